"""python -m sklottery reproduce: every entry runs in its --smoke mode."""

import pandas as pd
import pytest

from sklottery.__main__ import main
from sklottery.reproduce import EXPERIMENTS, list_experiments, run


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_runs_in_smoke_mode(name):
    result = run(name, "smoke", random_state=0)
    assert list(result.claims.columns) == ["claim", "published", "measured", "reproduced"]
    assert len(result.claims) >= 1
    assert set(result.claims["reproduced"]) <= {"yes", "no", "partly"}
    assert result.claims["published"].str.len().gt(0).all()
    assert isinstance(result.results, pd.DataFrame) and len(result.results)
    text = result.to_text()
    assert result.paper in text and "protocol (smoke)" in text and "published patterns" in text


def test_reproduce_command(tmp_path, capsys):
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    for name, _, paper in list_experiments():
        assert name in listed and paper in listed
    assert main(["reproduce", "zhou-supermask", "--smoke", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "zhou-supermask" in printed and "published" in printed
    claims = pd.read_csv(tmp_path / "zhou-supermask.csv")
    assert set(claims["mode"]) == {"smoke"}
    assert (tmp_path / "zhou-supermask_results.csv").exists()
    assert (tmp_path / "zhou-supermask.txt").read_text().startswith("zhou-supermask")
    with pytest.raises(SystemExit, match="unknown experiment"):
        main(["reproduce", "imagenet-resnet"])
    with pytest.raises(ValueError, match="mode"):
        run("mnist1d", "tiny")


def test_liu_structured_states_the_scratch_b_budget():
    result = run("liu-structured", "smoke", random_state=0)
    res = result.results
    for measured, granularity in zip(result.claims["measured"], ("neuron", "weight")):
        part = res[(res.granularity == granularity) & (res.strategy == "scratch_b")]
        epochs, compute = int(part["epochs"].iloc[0]), part["compute_fraction"].iloc[0]
        # an MLP: scratch-B's multiply-adds x epochs = dense's, up to whole epochs,
        # unless the cap (twice the dense epochs, here 1) binds
        capped = compute < 1
        assert (1 <= compute < 1 + part["macs_fraction"].iloc[0]) or epochs == 2
        assert f"scratch-B {epochs} epochs = {compute:.2f} dense compute" in measured
        assert ("capped" in measured) == capped
