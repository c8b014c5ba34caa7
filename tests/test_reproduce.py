"""python -m sklottery reproduce: every entry runs in its --smoke mode."""

import pandas as pd
import pytest

from sklottery import reproduce
from sklottery.__main__ import main
from sklottery.reproduce import EXPERIMENTS, list_experiments, run


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_runs_in_smoke_mode(name):
    result = run(name, "smoke", random_state=0)
    assert list(result.claims.columns) == ["claim", "published", "measured", "reproduced"]
    assert len(result.claims) >= 1
    # smoke mode runs 1 trial: claims that need a test are 'n/a' there
    assert all(r in ("yes", "no", "partly", "n/a") or r.startswith("n/a (")
               for r in result.claims["reproduced"])
    assert result.claims["published"].str.len().gt(0).all()
    assert isinstance(result.results, pd.DataFrame) and len(result.results)
    text = result.to_text()
    assert result.paper in text and "protocol (smoke, on cpu)" in text
    assert "published patterns" in text


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


# ------------------------------------------------------ the claims' rules
def _table(values):
    """A ticket_curve-like table: values[(strategy, level)] = list of trial values."""
    rows = []
    for (strategy, level), vals in values.items():
        for t, v in enumerate(vals):
            rows.append(dict(strategy=strategy, trial=t, weights_remaining=level,
                             round=0 if level == 100.0 else 1, test_acc=v,
                             test_acc_early_stop=v, test_acc_init=v))
    return pd.DataFrame(rows)


def test_a_claim_is_yes_only_when_significant_in_the_published_direction():
    from sklottery.reproduce import _claim

    assert _claim([0.90, 0.91, 0.92], [0.80, 0.81, 0.82])[1] == "yes"
    assert _claim([0.90, 0.95, 0.85], [0.88, 0.93, 0.83])[1] == "partly"  # direction only
    assert _claim([0.80, 0.81, 0.82], [0.90, 0.91, 0.92])[1] == "no"
    assert _claim([0.9], [0.8])[1] == "n/a"
    # not worse than within 1 point: 2.6 points below is not "comparable"
    assert _claim([0.836, 0.840, 0.844], [0.862, 0.866, 0.870], "not_worse")[1] == "no"
    assert _claim([0.862, 0.866, 0.870], [0.862, 0.866, 0.870], "not_worse")[1] == "yes"
    # lower is better: earlier early stops
    assert _claim([500, 510, 490], [900, 910, 890], percent=False,
                  greater_is_better=False)[1] == "yes"


def test_liu_structured_compares_scratch_with_fine_tune(monkeypatch):
    # the landed rule compared scratch-B with scratch-E and said "yes" with scratch-B
    # 2.6 points below fine-tune
    import sklottery.reproduce as R

    level = 11.1
    frames = []
    for granularity in ("neuron", "weight"):
        frames.append(_table({
            ("rewind", 100.0): [0.88, 0.88, 0.88], ("rewind", level): [0.85, 0.85, 0.85],
            ("continue", level): [0.866, 0.864, 0.868],
            ("scratch_e", level): [0.80, 0.81, 0.79],
            ("scratch_b", level): [0.840, 0.838, 0.842]}).assign(
                granularity=granularity, epochs=5, compute_fraction=1.0, macs_fraction=0.2))
    monkeypatch.setattr(R, "structured_comparison", lambda *a, **k: pd.concat(frames))
    monkeypatch.setattr(R, "_image_data", lambda *a, **k: (None, None, None, None, "data", None))
    _, claims, _, _ = R._liu_structured("smoke", 0, None)
    assert [c[3] for c in claims] == ["no", "no"]
    assert "scratch-B - fine-tune -2.6 pp" in claims[0][2]


def test_reproduce_names_and_checks_the_device(tmp_path, capsys, monkeypatch):
    """``--device auto`` trains where CUDA is (here: the CPU) and the report says so;
    a device this machine lacks is refused before anything runs."""
    import torch

    import sklottery.reproduce as reproduce

    devices = []
    original = reproduce._classifier
    monkeypatch.setattr(reproduce, "_classifier",
                        lambda **kw: devices.append(reproduce._DEVICE.get()) or original(**kw))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert main(["reproduce", "zhou-supermask", "--smoke", "--device", "auto"]) == 0
    assert f"protocol (smoke, on {expected})" in capsys.readouterr().out
    assert devices and set(devices) == {expected}
    if not torch.cuda.is_available():
        devices.clear()
        with pytest.raises(SystemExit, match="--device: .*CUDA is not available"):
            main(["reproduce", "zhou-supermask", "--smoke", "--device", "cuda",
                  "--out", str(tmp_path / "out")])
        assert devices == [] and not (tmp_path / "out").exists()


def test_all_on_the_cpu_skips_the_gpu_sized_experiments(monkeypatch, capsys):
    import sklottery.reproduce as reproduce

    ran = []

    def fake_run(name, mode, **kwargs):  # the command's loop, not the experiments
        ran.append(name)
        return reproduce.Reproduction(name=name, title="", paper="", mode=mode, protocol="",
                                      claims=pd.DataFrame({"reproduced": []}))

    monkeypatch.setattr(reproduce, "run", fake_run)
    assert main(["reproduce", "all", "--device", "cpu"]) == 0
    assert "skipping the GPU-sized frankle2020-rewinding" in capsys.readouterr().out
    assert ran == [n for n in EXPERIMENTS if n not in reproduce.GPU_SIZED]
    ran.clear()
    assert main(["reproduce", "frankle2020-rewinding", "--device", "cpu"]) == 0
    assert ran == ["frankle2020-rewinding"]  # by name it runs anywhere


class _Validated(Exception):
    pass


@pytest.mark.parametrize("data", ["images", "digits fallback"])
@pytest.mark.parametrize("mode", ["default", "full"])
@pytest.mark.parametrize("name", reproduce.GPU_SIZED)
def test_gpu_sized_protocols_pass_the_estimators_checks(name, mode, data, monkeypatch):
    """The GPU-sized protocols cannot run here: their settings must at least pass every
    check ``fit`` makes before training (a rewind point inside the dense round, ...), on
    the image files or on the digits the experiments fall back to without them."""
    import sklottery.datasets as datasets
    from sklottery.training import FitDriver

    if data == "digits fallback":
        def missing(*args, **kwargs):
            raise OSError("no image files")

        monkeypatch.setattr(datasets, "fetch_mnist", missing)
        monkeypatch.setattr(datasets, "fetch_fashion_mnist", missing)

    def validate_only(estimator, data, strategies, trials, random_state, n_jobs, **kwargs):
        X_tr, y_tr = data[0], data[1]
        k = kwargs.get("rewind_iteration")
        est = estimator if k is None else estimator.set_params(rewind_iteration=k)
        driver = FitDriver(est.fit_steps(X_tr, y_tr)).advance()
        try:
            if driver.error is not None:
                raise driver.error
            assert driver.request is not None
        finally:
            driver.steps.close()
        raise _Validated

    monkeypatch.setattr(reproduce, "_curve", validate_only)
    with pytest.raises(_Validated):
        run(name, mode, random_state=0)


def test_rewind_points_stay_inside_the_dense_round():
    est = reproduce._classifier(batch_size=100, max_epochs=2, validation_fraction=0.1)
    # 1000 rows: 900 fit rows, 9 batches x 2 epochs = 18 iterations, cap 9
    points, note = reproduce._rewind_points((0, 100, 500, 2000), est, 1000)
    assert points == (0, 9)
    assert note == (" Rewind points [100, 500, 2000] capped at 9 iterations, half the dense "
                    "round's 18.")
    assert reproduce._rewind_points((0, 2, 3), est, 1000) == ((0, 2, 3), "")
    # the default GPU protocols rewind to the published points on Fashion-MNIST
    est = reproduce._classifier(batch_size=128, max_epochs=15, validation_fraction=0.1)
    assert reproduce._rewind_points((0, 100, 500, 2000), est, 45000)[0] == (0, 100, 500, 2000)


def test_settings_replace_the_protocols_values_and_are_stated():
    result = run("zhou-supermask", "smoke", random_state=0, settings={"trials": 2})
    assert "Settings changed from the smoke protocol: trials=2." in result.protocol
    assert sorted(result.results["trial"].unique()) == [0, 1]


def test_nested_settings_reach_the_network_they_name(monkeypatch):
    seen = []
    real = reproduce._curve

    def record(estimator, data, *args, **kwargs):
        seen.append((estimator.module == "conv2", estimator.max_epochs))
        if estimator.module == "conv2":
            raise _Validated
        return real(estimator, data, *args, **kwargs)

    monkeypatch.setattr(reproduce, "_curve", record)
    with pytest.raises(_Validated):
        run("frankle2021-pai", "smoke", settings={"conv.epochs": 3, "epochs": 2})
    assert seen == [(False, 2), (True, 3)]


def test_unknown_settings_are_refused_before_training(capsys):
    with pytest.raises(ValueError, match=r"Unknown setting 'conv\.epoch'.*'conv\.epochs'"):
        run("frankle2021-pai", "default", settings={"conv.epoch": 12})
    with pytest.raises(ValueError, match="Unknown setting 'conv'"):
        run("frankle2021-pai", "default", settings={"conv": 1})
    with pytest.raises(SystemExit, match="expected NAME=VALUE"):
        main(["reproduce", "zhou-supermask", "--smoke", "--set", "trials"])


def test_the_set_flag(tmp_path, capsys):
    assert main(["reproduce", "zhou-supermask", "--smoke", "--set", "trials=2",
                 "--out", str(tmp_path)]) == 0
    assert "Settings changed from the smoke protocol: trials=2." in capsys.readouterr().out
    # a resumed run needs the same settings, in both directions
    for other in (["--set", "trials=3"], []):
        with pytest.raises(SystemExit, match="other settings"):
            main(["reproduce", "zhou-supermask", "--smoke", *other,
                  "--out", str(tmp_path), "--resume"])
    assert main(["reproduce", "zhou-supermask", "--smoke", "--set", "trials=2",
                 "--out", str(tmp_path), "--resume"]) == 0


def test_a_tuple_setting_resumes(tmp_path, monkeypatch):
    """A tuple is a list in the manifest's JSON: the same setting still resumes."""
    monkeypatch.setattr(reproduce, "run", lambda name, mode, **kw: reproduce.Reproduction(
        name=name, title="", paper="", mode=mode, protocol="",
        claims=pd.DataFrame({"reproduced": []})))
    flags = ["reproduce", "frankle2020-rewinding", "--smoke", "--set", "ks=(0, 1)",
             "--out", str(tmp_path)]
    assert main(flags) == 0
    assert main(flags + ["--resume"]) == 0


@pytest.mark.parametrize("flag, match", [("trial=2", "Unknown setting 'trial'"),
                                         ("trials=abc", "takes a value like 1")])
def test_a_bad_set_is_refused_before_anything_is_written(tmp_path, flag, match):
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=match):
        main(["reproduce", "zhou-supermask", "--smoke", "--set", flag, "--out", str(out)])
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("mode", ["smoke", "default", "full"])
def test_every_experiment_reads_its_settings_before_running(mode):
    """check_settings runs each experiment only up to its settings (instant)."""
    for name in EXPERIMENTS:
        reproduce.check_settings(name, mode, {})
