"""compare/reproduce --out: checked before computing, never mixed, written as work finishes.

The Ctrl-C cases run the command in a subprocess and send it a real SIGINT
from inside (at a finished run of its second data set, or of an
experiment's first curve), so the point of interruption is deterministic.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sklottery.__main__ import EXIT_INTERRUPTED, main

ROOT = Path(__file__).resolve().parents[1]

FAST = ["--trials", "2", "--rounds", "1", "--epochs", "3", "--hidden", "16", "--n-jobs", "1",
        "--quiet"]

#: Run the command line with ticket_curve patched to send SIGINT to this process
#: when the ``at``-th curve of the command reports its first finished run.
PATCHED = """
import os, signal, sys
import sklottery.analysis as A
original, calls, sent = A.ticket_curve, [0], []
def ticket_curve(*args, progress=None, **kwargs):
    calls[0] += 1
    def hook():
        if progress is not None:
            progress()
        if calls[0] == {at} and not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)
    return original(*args, progress=hook, **kwargs)
A.ticket_curve = ticket_curve
from sklottery.__main__ import main
sys.exit(main({argv!r}))
"""


def run_cli(argv, interrupt_at=None, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    if interrupt_at is None:
        cmd = [sys.executable, "-m", "sklottery", *argv]
    else:
        cmd = [sys.executable, "-c", PATCHED.format(at=interrupt_at, argv=list(argv))]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0


def unwritable(tmp_path):
    """Folders this process cannot write: under a regular file, and an existing one."""
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    if os.geteuid() == 0:  # root writes anywhere on a normal file system, not in /proc
        existing = "/proc/self"
    else:
        existing = tmp_path / "read_only"
        existing.mkdir()
        existing.chmod(0o500)
    return [str(a_file / "out"), str(existing)]


@pytest.mark.parametrize("command", ["compare", "reproduce"])
def test_unwritable_out_fails_before_any_computation(tmp_path, capsys, command):
    for out in unwritable(tmp_path):
        argv = (["compare", "--datasets", "iris", *FAST, "--out", out] if command == "compare"
                else ["reproduce", "zhou-supermask", "--smoke", "--out", out])
        t0 = time.perf_counter()
        with pytest.raises(SystemExit, match=r"cannot use --out .*Choose a folder you can "
                                             r"write to|cannot use --out .*not a folder"):
            main(argv)
        # before: PermissionError after the whole computation (38 s in the issue)
        assert time.perf_counter() - t0 < 2.0
        assert "== iris" not in capsys.readouterr().out


def test_an_earlier_run_is_never_mixed_in_silently(tmp_path):
    out = str(tmp_path / "out")
    assert main(["compare", "--datasets", "iris,wine", *FAST, "--out", out]) == 0
    manifest = json.loads((Path(out) / "sklottery_run.json").read_text())
    assert manifest["status"] == "complete"
    assert {u: r["status"] for u, r in manifest["units"].items()} == \
        {"iris": "complete", "wine": "complete"}
    before = {p.name: p.stat().st_mtime_ns for p in Path(out).iterdir()}
    # the same folder again, without a flag: refused, nothing touched
    with pytest.raises(SystemExit, match=r"already holds the compare run .*2 of 2 units "
                                         r"done: iris, wine.*--resume.*--overwrite"):
        main(["compare", "--datasets", "iris", *FAST, "--out", out])
    assert {p.name: p.stat().st_mtime_ns for p in Path(out).iterdir()} == before
    # other settings cannot be resumed
    with pytest.raises(SystemExit, match=r"other settings \(trials: 2 then, 3 now\)"):
        main(["compare", "--datasets", "iris", *FAST[:1], "3", *FAST[2:], "--out", out,
              "--resume"])
    # --overwrite removes the earlier run's files: no stale wine.png beside the new run
    assert main(["compare", "--datasets", "iris", *FAST, "--out", out, "--overwrite"]) == 0
    assert not (Path(out) / "wine.png").exists()
    assert set(pd.read_csv(Path(out) / "results.csv")["dataset"]) == {"iris"}
    # files of an older version (no manifest) count as an earlier run too
    old = tmp_path / "old"
    old.mkdir()
    (old / "report.html").write_text("<html>an older run</html>")
    with pytest.raises(SystemExit, match=r"files of an earlier run without a manifest "
                                         r"\(report.html\)"):
        main(["compare", "--datasets", "iris", *FAST, "--out", str(old)])


def test_interrupted_compare_writes_what_finished_marked_and_resume_completes(tmp_path):
    out = str(tmp_path / "out")
    argv = ["compare", "--datasets", "iris,wine,breast_cancer", *FAST, "--out", out]
    code, stdout, stderr, _ = run_cli(argv, interrupt_at=2)
    # before: Ctrl-C was swallowed per fit and the command went on to exit 0
    assert code == EXIT_INTERRUPTED, stdout + stderr
    assert "INTERRUPTED (Ctrl-C): wine interrupted after" in stdout
    assert "breast_cancer not run" in stdout
    folder = Path(out)
    report = (folder / "report.html").read_text()
    assert "class='banner'>INCOMPLETE: interrupted (Ctrl-C): wine interrupted after" in report
    verdicts = pd.read_csv(folder / "verdicts.csv").set_index("dataset")
    assert list(verdicts.index) == ["iris", "wine"]
    assert bool(verdicts.loc["iris", "complete"]) and not bool(verdicts.loc["wine", "complete"])
    assert verdicts.loc["wine", "sentence"].startswith("INTERRUPTED: the experiment was "
                                                       "stopped (Ctrl-C)")
    manifest = json.loads((folder / "sklottery_run.json").read_text())
    assert manifest["status"] == "interrupted"
    assert {u: r["status"] for u, r in manifest["units"].items()} == \
        {"iris": "complete", "wine": "interrupted"}
    iris_before = pd.read_csv(folder / "results.csv").query("dataset == 'iris'")
    # without a flag the folder is refused; --resume keeps iris and reruns the rest
    code, _, stderr, _ = run_cli(argv)
    assert code != 0 and "--resume" in stderr
    code, stdout, stderr, _ = run_cli([*argv, "--resume"])
    assert code == 0, stdout + stderr
    assert "== iris: finished in the earlier run (--resume), not recomputed ==" in stdout
    assert "== wine: finished in the earlier run" not in stdout
    results = pd.read_csv(folder / "results.csv")
    assert set(results["dataset"]) == {"iris", "wine", "breast_cancer"}
    pd.testing.assert_frame_equal(results.query("dataset == 'iris'").reset_index(drop=True),
                                  iris_before.reset_index(drop=True))
    assert "class='banner'" not in (folder / "report.html").read_text()
    assert json.loads((folder / "sklottery_run.json").read_text())["status"] == "complete"
    assert pd.read_csv(folder / "verdicts.csv")["complete"].all()


def test_interrupted_reproduce_judges_no_claim_and_resume_continues(tmp_path):
    out = str(tmp_path / "out")
    argv = ["reproduce", "zhou-supermask", "frankle-carbin-lenet", "--smoke", "--out", out]
    code, stdout, stderr, _ = run_cli(argv, interrupt_at=1)
    assert code == EXIT_INTERRUPTED, stdout + stderr
    assert "INTERRUPTED (Ctrl-C) in zhou-supermask; not run: frankle-carbin-lenet" in stdout
    claims = pd.read_csv(Path(out) / "zhou-supermask.csv", keep_default_na=False)
    # before: the claims table said "yes" with no word of the interrupt
    assert set(claims["reproduced"]) == {"n/a"}
    text = (Path(out) / "zhou-supermask.txt").read_text()
    assert "INTERRUPTED (Ctrl-C)" in text and "claims not judged" in text
    assert not (Path(out) / "frankle-carbin-lenet.csv").exists()
    code, stdout, stderr, _ = run_cli([*argv, "--resume"])
    assert code == 0, stdout + stderr
    # the resumed experiment ran again to its end (smoke mode's single trial still
    # judges nothing: n/a, but no longer for the interrupt)
    assert "INTERRUPTED" not in (Path(out) / "zhou-supermask.txt").read_text()
    manifest = json.loads((Path(out) / "sklottery_run.json").read_text())
    assert manifest["units"]["zhou-supermask"]["status"] == "complete"
    assert (Path(out) / "frankle-carbin-lenet.csv").exists()
    # a finished experiment is skipped by a further --resume
    code, stdout, _, _ = run_cli([*argv, "--resume"])
    assert code == 0 and "zhou-supermask: finished in the earlier run (--resume)" in stdout
