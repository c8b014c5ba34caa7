"""The compare command: verdicts, CSV files and the HTML report (also rendered)."""

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from sklottery.__main__ import build_parser, main
from sklottery.analysis import STRATEGIES
from sklottery.stats import VERDICTS

ARGS = ["compare", "--datasets", "iris,wine", "--trials", "2", "--rounds", "1",
        "--epochs", "3", "--hidden", "16", "--quiet"]


@pytest.fixture(scope="module")
def compare_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(ARGS + ["--out", str(out)])
    assert rc == 0
    return out, printed.getvalue()


def test_compare_writes_every_file(compare_out):
    out, printed = compare_out
    for f in ["results.csv", "summary.csv", "tests.csv", "verdicts.csv", "iris.png",
              "wine.png", "report.html"]:
        assert (out / f).stat().st_size > 0, f
    res = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert set(res["dataset"]) == {"iris", "wine"}
    assert set(res["strategy"]) == {"rewind", "random", "random_mask"}
    assert {"test_acc_init", "test_acc_no_retrain", "macs_fraction", "compute_fraction",
            "n_test", "stop_reason"} <= set(res.columns)
    assert "== iris" in printed and "== wine" in printed
    assert "Summary (test accuracy, or R² for regression, at the end of training)" in printed


def test_compare_shows_traditional_pruning_without_retraining(compare_out):
    out, printed = compare_out
    res = pd.read_csv(out / "results.csv")
    pruned = res[(res["round"] > 0) & (res["strategy"] != "random")]
    assert len(pruned) and pruned["test_acc_no_retrain"].between(0, 1).all()
    assert res.loc[res["strategy"] == "random", "test_acc_no_retrain"].isna().all()
    html = (out / "report.html").read_text()
    title = "Test accuracy right after pruning, before any retraining (traditional pruning)"
    assert html.count(title) == 2  # one table per data set
    # the table: no dense column (nothing pruned there), no random-reinit row
    table = html[html.index(title):].split("</table>")[0]
    assert "(dense)" not in table and "random reinit" not in table
    assert "winning ticket (rewind)" in table and "random mask" in table
    # the summary: the ticket's network right after pruning to the level tested
    header = printed[printed.index("Summary ("):].splitlines()[1]
    assert "no retrain" in header and "<b>no retrain</b>" in html
    from sklottery.stats import format_value

    v = pd.read_csv(out / "verdicts.csv")
    # the verdict sentence says what retraining adds over pruning without it
    assert v["sentence"].str.contains("without any retraining (traditional pruning), the "
                                      "trained network scores", regex=False).all()
    for name, level in zip(v["dataset"], v["level"]):
        at = res[(res.dataset == name) & (res.strategy == "rewind")
                 & (res.weights_remaining.round(2) == round(level, 2))]["test_acc_no_retrain"]
        assert format_value(at.mean(), at.std(), True) in html


def test_verdicts_csv_has_the_verdict_and_its_evidence(compare_out):
    out, printed = compare_out
    v = pd.read_csv(out / "verdicts.csv", keep_default_na=False, na_values=[""])
    assert list(v["dataset"]) == ["iris", "wine"]
    assert set(v["verdict"]) <= set(VERDICTS)
    for col in ["reason", "level", "margin", "diff", "ci_low", "ci_high", "hedges_g",
                "p_one_sided", "decision", "mdd", "trials_needed", "n_tests", "n_trials",
                "n_test", "sentence"]:
        assert col in v.columns
    assert (v["n_trials"] == 2).all()
    # two trials is weak evidence: the sentence and the printed output say so
    assert v["sentence"].str.contains("Weak evidence: only 2 trials").all()
    assert printed.count("Weak evidence") >= 2
    # iris' 38 test samples: one sample is 2.6 points
    assert "38 test samples per trial, so one sample is 2.6 points" in v.loc[0, "sentence"]
    tests = pd.read_csv(out / "tests.csv")
    assert (tests["weights_remaining"] < 100).all()  # no dense-vs-dense test
    # the decisions agree with the printed intervals (one-sided at 2.5 % each)
    verdict_tests = tests.dropna(subset=["decision"])
    assert len(verdict_tests)
    beats = verdict_tests["decision"] == "beats"
    assert (verdict_tests.loc[beats, "ci_low"] > 0).all()
    assert (verdict_tests.loc[~beats, "ci_low"] <= 0).all()


def test_summary_csv_intervals_stay_inside_percent_range(compare_out):
    out, _ = compare_out
    s = pd.read_csv(out / "summary.csv")
    acc = s[s["metric"].str.contains("acc")].dropna(subset=["ci_low"])
    assert len(acc) and (acc["ci_low"] >= 0).all() and (acc["ci_high"] <= 1).all()
    assert set(s["metric"]) == {"test_acc", "test_acc_early_stop", "test_acc_init",
                                "test_acc_no_retrain", "early_stop_iteration"}


def test_report_structure(compare_out):
    out, _ = compare_out
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    # the summary comes first, then the sections, then the reproduction block
    assert html.index("id='summary'") < html.index("id='iris'") < html.index("id='reproduce'")
    for verdict in VERDICTS:
        assert f"<b>{verdict}</b>" in html  # explained
    assert "winning ticket (rewind)" in html and "random reinit" in html
    assert "fixed-sequence" in html and "Hedges" in html and "margin" in html
    assert "python -m sklottery compare --datasets iris,wine --trials 2" in html
    assert re.search(r"versions: sklottery \S+, torch \S+, scikit-learn \S+", html)
    assert "CPU cores" in html and "wall time" in html
    assert "Runs cut short" in html
    # the intervals say what they are and how the decisions read them, and the
    # warnings column says what it counts
    assert "per-comparison 95 % t interval" in html
    assert "the 95 % Welch t interval the verdict's decision at that level is read from" \
        in html
    assert "decisions are made as the verdict sentence states" in html
    assert "<em>Warnings</em> counts the notes" in html and "weak evidence" in html
    # same digits everywhere: every cell of the tables is '12.3' or '12.3 ± 4.5'
    cells = re.findall(r"<td>([^<]*)</td>", html)
    numeric = [c for c in cells if c and c[0].isdigit() and "±" in c]
    assert numeric and all(re.fullmatch(r"\d+\.\d ± \d+\.\d( %)?", c) for c in numeric)


def test_compare_needs_a_reinit_control(tmp_path):
    with pytest.raises(SystemExit, match="random re-initialisation control"):
        main(["compare", "--strategies", "rewind,random_mask", "--out", str(tmp_path)])


def test_compare_command_rejects_bad_names(tmp_path):
    with pytest.raises(SystemExit, match="unknown data set"):
        main(["compare", "--datasets", "imagenet", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="unknown strategy"):
        main(["compare", "--strategies", "lucky", "--out", str(tmp_path)])


def test_help_mentions_every_strategy_and_has_no_literal_double_percent(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = capsys.readouterr().out
    for s in STRATEGIES:
        assert s in text
    assert "%%" not in text
    # the levels the help quotes are those the default run reaches on digits
    from sklottery.pruning import remaining_schedule

    args = build_parser().parse_args(["compare"])
    sizes = {"a": 64 * 300, "b": 300 * 100, "c": 100 * 10}
    rate = args.pruning_rate
    levels = remaining_schedule(sizes, {"a": rate, "b": rate, "c": rate / 2}, args.rounds)
    quoted = " ".join(f"{100 * x:.1f}" for x in levels[1:])
    flat = " ".join(text.split())
    assert quoted.replace(" ", ", ", 3).replace(" 3.5", " and 3.5") in flat


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


@pytest.mark.skipif(CHROMIUM is None,
                    reason="headless Chromium is not installed (apt-get install chromium)")
def test_report_renders_in_chromium_within_the_page_width(compare_out, tmp_path):
    out, _ = compare_out
    html = (out / "report.html").read_text()
    # the longest verdict the summary can show: an interrupted data set
    long_verdict = "n/a (interrupted: 4 of 6 runs completed (2 not run))"
    first_badge = re.search(r"<span class='badge [^']*'>[^<]*</span>", html).group(0)
    probe_html = html.replace(first_badge, f"<span class='badge none'>{long_verdict}</span>", 1)
    probe = tmp_path / "probe.html"
    # the page reports in its title its layout width and height, and by how many
    # pixels the right edge of each table passes the text column (body content box)
    probe.write_text(probe_html.replace("</body>", """<script>
var b = document.body, cs = getComputedStyle(b);
var right = b.getBoundingClientRect().right - parseFloat(cs.paddingRight);
var over = [...document.querySelectorAll('table')].map(
    t => Math.ceil(t.getBoundingClientRect().right - right));
document.title = 'W' + document.documentElement.scrollWidth + 'H'
    + document.documentElement.scrollHeight + 'T' + over.join('_');
</script></body>"""))
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--window-size=1280,1000"]
    dom = subprocess.run(common + ["--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    width, height, over = re.search(r"<title>W(\d+)H(\d+)T([-\d_]+)</title>", dom).groups()
    assert int(width) <= 1280  # nothing wider than the window: no horizontal scrolling
    assert int(height) > 1000
    over = [int(x) for x in over.split("_")]
    assert long_verdict in probe_html and "class=\"dataframe summary\"" in probe_html
    # every table, the summary (first) included, stays inside the text column
    assert len(over) >= 3 and max(over) <= 0, over
    shot = tmp_path / "report.png"
    subprocess.run(common + [f"--screenshot={shot}", (out / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    import matplotlib.image

    img = matplotlib.image.imread(shot)
    assert img.shape[1] == 1280
    # not a blank page: dark text on a light background
    grey = img[..., :3].mean(axis=2)
    assert (grey < 0.3).mean() > 0.005 and (grey > 0.9).mean() > 0.5
    assert np.unique((img[..., :3] * 255).astype(int).reshape(-1, 3), axis=0).shape[0] > 50


def test_compare_regression_data_sets(tmp_path):
    out = tmp_path / "reg"
    rc = main(["compare", "--datasets", "diabetes,friedman1", "--trials", "2", "--rounds",
               "1", "--epochs", "3", "--hidden", "16", "--quiet", "--out", str(out),
               "--metric", "early_stop"])
    assert rc == 0
    v = pd.read_csv(out / "verdicts.csv")
    assert list(v["metric"]) == ["test_r2_early_stop"] * 2
    assert set(v["verdict"]) <= set(VERDICTS)
    res = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert {"test_r2", "test_mse", "valid_r2"} <= set(res.columns)
    html = (out / "report.html").read_text()
    assert "Test R² at the end of training, R²" in html
    assert "Test R² right after pruning, before any retraining (traditional pruning)" in html
    no_retrain = pd.read_csv(out / "results.csv")["test_r2_no_retrain"]
    assert no_retrain[res["round"] > 0].notna().any() and no_retrain[res["round"] == 0].isna().all()
    # R² is not a percentage: three decimals, no % sign in the tables
    cells = re.findall(r"<td>(-?\d+\.\d+ ± \d+\.\d+)</td>", html)
    assert cells and all(re.fullmatch(r"-?\d+\.\d{3} ± \d+\.\d{3}", c) for c in cells)
    tests = pd.read_csv(out / "tests.csv")
    assert set(tests["metric"]) == {"test_r2_early_stop"}


def test_compare_structured_granularity(tmp_path):
    out = tmp_path / "structured"
    rc = main(["compare", "--datasets", "iris", "--trials", "2", "--rounds", "1", "--epochs",
               "3", "--hidden", "16", "--quiet", "--granularity", "neuron", "--strategies",
               "rewind,random,continue,scratch_e,scratch_b", "--out", str(out)])
    assert rc == 0
    res = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert set(res["strategy"]) == {"rewind", "random", "continue", "scratch_e", "scratch_b"}
    # whole neurons: 16 -> 8 units, 4x16 + 16x3 weights -> 4x8 + 8x3
    level = res.loc[res["round"] == 1, "weights_remaining"].unique()
    assert level == pytest.approx([100 * (4 * 8 + 8 * 3) / (4 * 16 + 16 * 3)])
    assert "granularity neuron" in (out / "report.html").read_text()
    with pytest.raises(SystemExit, match="one_shot"):
        main(["compare", "--granularity", "neuron", "--strategies", "rewind,random,one_shot",
              "--out", str(tmp_path)])
