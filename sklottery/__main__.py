"""Command line: ``python -m sklottery {demo,compare,reproduce,ticket} ...``.

``demo``     one IMP run on scikit-learn's bundled digits, printing the
             per-round table and the final sparsity and accuracy.
``compare``  winning tickets vs controls across data sets: table, CSV, PNG
             figures and a self-contained HTML report with a verdict per
             data set.
``reproduce`` published experiments (Frankle & Carbin, Liu et al., Zhou et
             al., Frankle et al. 2020, MNIST-1D): published vs measured.
``ticket``   ``ticket export MODEL.pkl OUT.ticket`` writes the ticket of a
             fitted estimator saved with joblib/pickle as a ticket file
             (:mod:`sklottery.tickets`); ``ticket inspect FILE.ticket``
             checks one and prints what it holds.

Run ``python -m sklottery compare --help`` for every option.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import os
import shlex
import sys
import time

import numpy as np

TABULAR = ("digits", "breast_cancer", "wine", "iris")
IMAGE = ("fashion_mnist", "mnist1d")
#: Regression data sets: sklearn's bundled diabetes, and two generated
#: problems (make_friedman1: 500 samples, 10 features of which 5 matter;
#: make_regression: 500 samples, 20 features, 10 informative, noise 10).
REGRESSION = ("diabetes", "friedman1", "regression")
DATASETS = TABULAR + IMAGE + REGRESSION


def load_dataset(name, max_samples=None, random_state=0):
    """Return ``(X, y, description)`` for a data set name of the compare command."""
    from sklearn import datasets as skd

    if name in TABULAR:
        loader = getattr(skd, f"load_{name}")
        X, y = loader(return_X_y=True)
        desc = f"sklearn load_{name}"
    elif name == "fashion_mnist":
        from .datasets import fetch_fashion_mnist

        X, y = fetch_fashion_mnist(return_X_y=True, download_if_missing=False)
        desc = "Fashion-MNIST (train split)"
    elif name == "mnist1d":
        from .datasets import load_mnist1d

        X, y = load_mnist1d(return_X_y=True, random_state=random_state)
        desc = "MNIST-1D (generated locally)"
    elif name == "diabetes":
        X, y = skd.load_diabetes(return_X_y=True)
        desc = "sklearn load_diabetes (regression)"
    elif name == "friedman1":
        X, y = skd.make_friedman1(n_samples=500, noise=1.0, random_state=random_state)
        desc = "sklearn make_friedman1, 500 samples, noise 1 (regression)"
    elif name == "regression":
        X, y = skd.make_regression(n_samples=500, n_features=20, n_informative=10,
                                   noise=10.0, random_state=random_state)
        desc = "sklearn make_regression, 500 x 20, 10 informative, noise 10 (regression)"
    else:
        raise SystemExit(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    X = np.asarray(X, dtype=np.float32)
    if max_samples and len(X) > max_samples:
        rng = np.random.RandomState(random_state)
        idx = np.sort(rng.choice(len(X), max_samples, replace=False))
        X, y = X[idx], y[idx]
        desc += f", random subset of {max_samples}"
    return X, np.asarray(y), desc


def _auto_epochs(n_train, batch_size, min_iterations):
    """Epochs so that every round trains at least ``min_iterations`` iterations."""
    per_epoch = max(1, math.ceil(n_train / batch_size))
    return int(min(500, max(1, math.ceil(min_iterations / per_epoch))))


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


# ---------------------------------------------------------------------- demo
def demo(args):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from . import LotteryTicketClassifier

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0,
                                              stratify=y)
    clf = LotteryTicketClassifier(n_rounds=args.rounds, max_epochs=args.epochs,
                                  random_state=args.random_state, verbose=1)
    model = make_pipeline(StandardScaler(), clf)
    print(f"LotteryTicketClassifier on digits: {len(X_tr)} train / {len(X_te)} test, "
          f"LeNet-300-100, {args.rounds} rounds of 20 % (output layer 10 %), "
          f"{args.epochs} epochs per round, rewind to theta0\n")
    t0 = time.perf_counter()
    model.fit(X_tr, y_tr)
    print(f"\nfinal network: {100 * clf.sparsity_:.2f} % of weights pruned "
          f"({100 - 100 * clf.sparsity_:.2f} % left), test accuracy "
          f"{model.score(X_te, y_te):.4f}; {time.perf_counter() - t0:.1f} s")
    return 0


# ------------------------------------------------------------------- compare
#: Per task: the score column the verdict reads (``--metric end``), and the
#: per-data-set tables (column, title).
TASKS = {
    "classification": dict(
        score="acc", name="test accuracy", unit="%",
        tables=(
            ("test_acc", "Test accuracy at the end of training"),
            ("test_acc_early_stop", "Test accuracy at the early-stop iteration (Frankle & "
                                    "Carbin's headline)"),
            ("test_acc_init", "Test accuracy of the masked initial weights, before any "
                              "training (Zhou et al.'s supermask effect)"),
            ("test_acc_no_retrain", "Test accuracy right after pruning, before any retraining "
                                    "(traditional pruning)"),
        )),
    "regression": dict(
        score="r2", name="test R²", unit="R²",
        tables=(
            ("test_r2", "Test R² at the end of training"),
            ("test_r2_early_stop", "Test R² at the early-stop iteration"),
            ("test_r2_init", "Test R² of the masked initial weights, before any training"),
            ("test_r2_no_retrain", "Test R² right after pruning, before any retraining "
                                   "(traditional pruning)"),
        )),
}


def task_of(name):
    """'regression' or 'classification' for a data set name of the compare command."""
    return "regression" if name in REGRESSION else "classification"


def verdict_metric(task, which):
    """The column the verdict reads: ``which`` is 'end' or 'early_stop'."""
    score = TASKS[task]["score"]
    return f"test_{score}" + ("_early_stop" if which == "early_stop" else "")


def strategy_table(results, metric="test_acc", ticket="rewind", percent=True):
    """Per-data-set table: one row per strategy (ticket first), one column per level.

    Cells are ``mean ± std`` over trials, in percent with one decimal (or,
    with ``percent=False``, in the metric's units with three decimals). The
    first column is the dense network (100 % of the weights), shown in the
    ticket's row (every chain strategy starts from the same dense network).
    Rows and levels without a value of ``metric`` are left out (e.g.
    ``test_acc_no_retrain`` has none at the dense level and none for the
    mask controls trained from a new initialisation).
    """
    import pandas as pd

    from .stats import LEVEL_DECIMALS, format_level, strategy_label, summarize_curve

    dense_level = round(float(results["weights_remaining"].max()), LEVEL_DECIMALS)
    df = results.dropna(subset=[metric])
    curve = summarize_curve(df, metric=metric)
    levels = sorted(curve["weights_remaining"].unique(), reverse=True)
    order = [ticket] + [s for s in pd.unique(df["strategy"]) if s != ticket]
    cells = {}
    for row in curve.itertuples():
        if row.weights_remaining == dense_level and row.strategy != ticket:
            continue
        scale, digits = (100, 1) if percent else (1, 3)
        spread = "" if not np.isfinite(row.std) else f" ± {scale * row.std:.{digits}f}"
        cells[(row.strategy, row.weights_remaining)] = f"{scale * row.mean:.{digits}f}{spread}"
    columns = [f"{format_level(lvl)}" + (" (dense)" if lvl == dense_level else "")
               for lvl in levels]
    present = [s for s in order if s in set(df.strategy)]
    return pd.DataFrame(
        [[strategy_label(s)] + [cells.get((s, lvl), "") for lvl in levels] for s in present],
        columns=["strategy \\ weights left"] + columns,
    )


def _machine():
    import platform

    import torch

    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, "
            f"torch threads {torch.get_num_threads()}, Python {platform.python_version()}")


def _versions():
    import sklearn
    import skorch
    import torch

    from . import __version__

    return {"sklottery": __version__, "torch": torch.__version__,
            "scikit-learn": sklearn.__version__, "skorch": skorch.__version__,
            "numpy": np.__version__}


def compare(args):
    args.device = _resolved_device(args.device)  # a clear error before anything runs
    if args.scheduler and args.backend != "dask":
        raise SystemExit("--scheduler is the address of a Dask scheduler: use it with "
                         "--backend dask")
    if args.backend != "dask":
        return _compare(args)
    from ._dask import dask_backend, require_distributed

    try:
        require_distributed()
    except ImportError as exc:
        raise SystemExit(str(exc)) from None
    with dask_backend(args.scheduler) as client:
        if not args.quiet:
            print(f"Dask cluster: {client.scheduler_info().get('address', args.scheduler)}, "
                  f"{len(client.scheduler_info().get('workers', {}))} workers",
                  file=sys.stderr)
        return _compare(args, client)


#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), after it wrote what finished.
EXIT_INTERRUPTED = 130

#: What ``compare --resume`` must find unchanged (the settings that shape the results).
_COMPARE_SETTINGS = ("strategies", "rounds", "trials", "metric", "pruning_rate", "granularity",
                     "hidden", "lr", "batch_size", "epochs", "min_iterations", "test_size",
                     "max_samples", "device", "random_state")


def _compare_files(names):
    """The files ``compare`` writes (for the data sets ``names``; None: every data set)."""
    names = DATASETS if names is None else names
    return ["results.csv", "summary.csv", "tests.csv", "verdicts.csv", "report.html"] + [
        f"{n}.png" for n in names]


def _compare(args, client=None):
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from tqdm.auto import tqdm

    from . import LotteryTicketClassifier, LotteryTicketRegressor, stats
    from ._interrupt import experiment_stop, stop_requested
    from ._output import OutputFolder
    from .analysis import STRATEGIES, n_runs, run_status, ticket_curve
    from .exceptions import ExperimentInterrupted

    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if args.methods:
        strategies = _method_strategies(args.methods)
        args.strategies = ",".join(strategies)  # the report and --resume see them
    for s in strategies:
        if s not in STRATEGIES:
            raise SystemExit(f"unknown strategy {s!r}; choose from {', '.join(STRATEGIES)}")
    if args.granularity != "weight" and "one_shot" in strategies:
        raise SystemExit("--granularity neuron/filter runs rounds: drop 'one_shot' from "
                         "--strategies")
    if not any(s in stats.REINIT_CONTROLS for s in strategies):
        raise SystemExit(
            "--strategies needs a random re-initialisation control ('random', 'scratch_e' "
            "or 'scratch_b'): without one, matching dense says nothing about winning "
            "tickets.")
    for d in names:
        if d not in DATASETS:
            raise SystemExit(f"unknown data set {d!r}; choose from {', '.join(DATASETS)}")
    if args.trials < 1:
        raise SystemExit("--trials must be at least 1")
    settings = {k: getattr(args, k) for k in _COMPARE_SETTINGS}
    out = OutputFolder(args.out, "compare", settings, _compare_files,
                       resume=args.resume, overwrite=args.overwrite)
    previous = None
    if any(out.done(n) for n in names):
        previous = pd.read_csv(os.path.join(args.out, "results.csv"))
        previous["stop_reason"] = previous["stop_reason"].fillna("")
    hidden = tuple(int(h) for h in args.hidden.split(",")) if args.hidden else ()
    t_start = time.perf_counter()
    sections, frames = [], []
    interrupted = False
    with experiment_stop(client):
        for i, name in enumerate(names):
            X, y, desc = load_dataset(name, args.max_samples, args.random_state)
            n_train = int(len(X) * (1 - args.test_size) * 0.9)
            epochs = args.epochs or _auto_epochs(n_train, args.batch_size, args.min_iterations)
            task = task_of(name)
            if out.done(name):
                df = previous[previous["dataset"] == name].drop(columns="dataset")
                df = df.reset_index(drop=True)
                df.attrs["sklottery_runs"] = out.unit(name).get("runs") or {}
                seconds = float(out.unit(name).get("seconds", float("nan")))
                print(f"\n== {name}: finished in the earlier run (--resume), not recomputed ==")
            else:
                cls = LotteryTicketRegressor if task == "regression" else \
                    LotteryTicketClassifier
                clf = cls(
                    hidden_layer_sizes=hidden, n_rounds=args.rounds,
                    pruning_rate=args.pruning_rate, max_epochs=epochs,
                    batch_size=args.batch_size, learning_rate_init=args.lr,
                    device=args.device, pruning_granularity=args.granularity,
                )
                est = make_pipeline(StandardScaler(), clf)
                total = n_runs(clf, strategies, args.trials)
                t0 = time.perf_counter()
                with tqdm(total=total, desc=f"{name}", unit="run", disable=args.quiet,
                          file=sys.stderr) as bar:
                    try:
                        df = ticket_curve(est, X, y, strategies=strategies,
                                          n_trials=args.trials, test_size=args.test_size,
                                          n_jobs=args.n_jobs, random_state=args.random_state,
                                          progress=bar.update)
                    except ExperimentInterrupted as exc:
                        df, interrupted = exc.results, True
                seconds = time.perf_counter() - t0
            section = _dataset_section(name, desc, len(X), epochs, seconds, df, task, args,
                                       strategies)
            sections.append(section)
            df = df.copy()
            df.insert(0, "dataset", name)
            frames.append(df)
            _print_section(section, args)
            left = names[i + 1:] if interrupted or stop_requested() else []
            _write_compare(out, sections, frames, args, strategies,
                           time.perf_counter() - t_start,
                           pending=[n for n in names[i + 1:]], stopped=left)
            status = run_status(section["df"])
            out.finish_unit(name, "interrupted" if interrupted else "complete",
                            files=[f"{name}.png"], seconds=seconds, epochs=epochs,
                            runs={k: v for k, v in status.items() if k != "text"})
            if interrupted or stop_requested():
                interrupted = True
                break
    total_seconds = time.perf_counter() - t_start
    not_run = names[len(sections):]
    out.finish("interrupted" if interrupted else "complete")
    print("\nSummary (test accuracy, or R² for regression, "
          + ("at the end of training" if args.metric == "end" else "at early stop") + "):")
    print(_summary_frame(sections).to_string(index=False))
    if interrupted:
        print(f"\nINTERRUPTED (Ctrl-C): {_interruption_text(sections, not_run)}. What "
              f"finished is in {args.out}; continue with the same command and --resume.")
    print(f"\nwrote {args.out}/results.csv, summary.csv, tests.csv, verdicts.csv, "
          f"{', '.join(sec['name'] + '.png' for sec in sections)}, report.html  "
          f"({total_seconds:.0f} s)")
    return EXIT_INTERRUPTED if interrupted else 0


def _interruption_text(sections, not_run):
    """'iris interrupted after 7 of 20 runs completed (...); wine not run' for banners."""
    from .analysis import run_status

    parts = [f"{sec['name']} {run_status(sec['df'])['text']}" for sec in sections
             if run_status(sec["df"])["interrupted"]]
    if not_run:
        parts.append(f"{', '.join(not_run)} not run")
    return "; ".join(parts) or "stopped between data sets"


def _mask_checks(df, metric, strategies):
    """The statements of :func:`sklottery.stats.mask_information` for every mask that
    was run with its layer-wise shuffle: the ticket, and each pruning-at-init method."""
    from .stats import mask_information

    pairs = [("rewind", "shuffle_layer")] + [(s[:-len("_shuffle")], s) for s in strategies
                                              if s.endswith("_shuffle")]
    return [mask_information(df, ticket=a, control=b, metric=metric)["statement"]
            for a, b in pairs if a in strategies and b in strategies]


def _dataset_section(name, desc, n, epochs, seconds, df, task, args, strategies):
    """Everything the outputs say about one data set (statistics, tables, figure)."""
    import matplotlib.pyplot as plt

    from . import stats
    from .analysis import run_status
    from .plotting import plot_ticket_figures

    metric = verdict_metric(task, args.metric)
    percent = task == "classification"
    summary = stats.matching_summary(df, metric=metric)
    sentence = stats.verdict(summary)
    usable = df.dropna(subset=[metric])
    checks = _mask_checks(usable, metric, strategies)
    if checks:
        sentence += (" Sanity checks of the masks (Frankle et al. 2021; does a mask carry "
                     "more than its per-layer densities?): " + "; ".join(checks) + ".")
    tests = (stats.compare_to_ticket(usable, metric=metric).assign(dataset=name, metric=metric)
             if len(usable) else None)
    curves = [stats.summarize_curve(usable.dropna(subset=[m]), metric=m)
              .assign(dataset=name, metric=m)
              for m in (*(t for t, _ in TASKS[task]["tables"]), "early_stop_iteration")
              if m in usable and usable[m].notna().any()]
    png = None
    if len(usable):
        fig = plot_ticket_figures(usable)
        fig.suptitle(f"{name}: {desc}")
        png = _png(fig)
        plt.close(fig)
    tables = [(title, strategy_table(usable, m, percent=percent))
              for m, title in TASKS[task]["tables"] if m in usable and usable[m].notna().any()]
    stopped = df[df["stop_reason"].fillna("") != ""]
    cut = stopped.assign(done=stopped["round"].where(stopped[metric].notna())).groupby(
        ["strategy", "trial"], sort=False).agg(
        reason=("stop_reason", "first"), last_round=("done", "max")).reset_index()
    status = run_status(df)
    row = stats.summary_row(summary)
    verdict_row = {"dataset": name, "samples": n, "epochs_per_round": epochs,
                   "metric": metric, **row, "runs_cut_short": len(cut),
                   "complete": bool(status["complete_experiment"]), "runs": status["text"],
                   "seconds": seconds}
    return dict(name=name, desc=desc, task=task, sentence=sentence, summary=summary,
                unit="%" if percent else "R²", metric=metric, tables=tables, png=png, n=n,
                epochs=epochs, seconds=seconds, cut=cut, df=df, tests=tests, curves=curves,
                family=summary["tests"].assign(dataset=name), verdict_row=verdict_row,
                status=status, trials=args.trials)


def _print_section(sec, args):
    n_test = sec["summary"]["n_test"] or 0
    print(f"\n== {sec['name']} ({sec['desc']}; {sec['n']} samples, {n_test} test samples per "
          f"trial, {args.trials} trials, {sec['epochs']} epochs/round, {sec['seconds']:.0f} s) "
          "==")
    if sec["status"]["interrupted"]:
        print(f"INTERRUPTED: {sec['status']['text']}")
    for title, table in sec["tables"][:2]:
        print(f"{title}, {sec['unit']} (mean ± std over trials):")
        print(table.to_string(index=False))
    print(sec["sentence"], flush=True)
    if len(sec["cut"]):
        from .stats import strategy_label

        print(f"{len(sec['cut'])} run(s) cut short: " + "; ".join(
            f"{strategy_label(r.strategy)} trial {r.trial} ({r.reason})"
            for r in sec["cut"].itertuples()))


def _write_compare(out, sections, frames, args, strategies, total_seconds, pending, stopped):
    """(Re)write every output of ``compare`` for the data sets done so far, atomically."""
    import pandas as pd

    results = pd.concat(frames, ignore_index=True)
    out.write("results.csv", results.to_csv(index=False))
    curves = [c for sec in sections for c in sec["curves"]]
    if curves:
        curves = pd.concat(curves, ignore_index=True)
        curves = curves[["dataset", "metric"] + [c for c in curves.columns
                                                 if c not in ("dataset", "metric")]]
        out.write("summary.csv", curves.to_csv(index=False))
    tests = [sec["tests"] for sec in sections if sec["tests"] is not None]
    if tests:
        tests = pd.concat(tests, ignore_index=True)
        tests = tests[["dataset", "metric"] + [c for c in tests.columns
                                               if c not in ("dataset", "metric")]]
        family = pd.concat([sec["family"] for sec in sections], ignore_index=True)
        family = family.reindex(columns=["dataset", "strategy", "weights_remaining",
                                         "p_one_sided", "decision", "tested_in"])
        tests = tests.merge(family, on=["dataset", "strategy", "weights_remaining"],
                            how="left")
        out.write("tests.csv", tests.to_csv(index=False))
    out.write("verdicts.csv",
              pd.DataFrame([sec["verdict_row"] for sec in sections]).to_csv(index=False))
    for sec in sections:
        if sec["png"] is not None:
            out.write(f"{sec['name']}.png", sec["png"])
    banner = None
    if stopped:
        banner = (f"INCOMPLETE: interrupted (Ctrl-C): {_interruption_text(sections, stopped)}."
                  " Continue with the same command and --resume.")
    elif any(sec["status"]["interrupted"] for sec in sections):
        banner = f"INCOMPLETE: interrupted (Ctrl-C): {_interruption_text(sections, [])}."
    elif pending:
        banner = (f"IN PROGRESS: {len(sections)} of {len(sections) + len(pending)} data sets "
                  f"done ({', '.join(pending)} still to run) when this report was written.")
    out.write("report.html", _report_html(sections, args, strategies, total_seconds, banner))


def _summary_frame(sections):
    """The cross-data-set summary: one row per data set."""
    import pandas as pd

    from .stats import format_level, format_value, summary_row

    rows = []
    for sec in sections:
        s = sec["summary"]
        r = summary_row(s)
        scale, digits = (100, 1) if s["percent"] else (1, 3)
        diff = "n/a"
        if np.isfinite(r["diff"]):
            ci = (f" [{scale * r['ci_low']:+.{digits}f}, {scale * r['ci_high']:+.{digits}f}]"
                  if np.isfinite(r["ci_low"]) else "")
            diff = f"{scale * r['diff']:+.{digits}f}{ci}"
        p = r["p_one_sided"]
        verdict = "n/a" if r["verdict"] is None else r["verdict"]
        if sec["status"]["interrupted"]:
            verdict = f"{verdict} (interrupted: {sec['status']['text'].split(' after ')[-1]})"
        rows.append({
            "data set": sec["name"],
            "verdict": verdict,
            "winning level": format_level(r["winning_level"]),
            "level tested": format_level(r["level"]),
            "metric": sec["metric"],
            "ticket": format_value(s["ticket_mean"], s["ticket_std"], s["percent"]),
            "dense": format_value(s["dense_mean"], s["dense_std"], s["percent"]),
            "no retrain": _no_retrain_at(sec, r["level"]),
            "ticket − random reinit (95 % CI)": diff,
            "p (one-sided)": "n/a" if not np.isfinite(p) else (
                "<0.001" if p < 0.001 else f"{p:.3f}"),
            "trials": r["n_trials"],
            "test samples": r["n_test"],
            "warnings": len(s["notes"]),
        })
    return pd.DataFrame(rows)


def _no_retrain_at(sec, level):
    """The ticket chain's score right after pruning to ``level``, before retraining.

    ``test_<score>_no_retrain`` of the winning-ticket rows (``'rewind'``) at
    ``level``: the weights its previous round trained, under this level's
    mask (traditional pruning without retraining), as ``mean ± std``.
    """
    from .stats import LEVEL_DECIMALS, format_value

    df, s = sec["df"], sec["summary"]
    column = f"test_{TASKS[sec['task']]['score']}_no_retrain"
    if level is None or not np.isfinite(level) or column not in df:
        return "n/a"
    at = df[(df["strategy"] == "rewind")
            & (df["weights_remaining"].round(LEVEL_DECIMALS) == round(level, LEVEL_DECIMALS))]
    values = at[column].dropna()
    if not len(values):
        return "n/a"
    std = float(values.std()) if len(values) > 1 else np.nan
    return format_value(float(values.mean()), std, s["percent"])


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1120px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f4f4f4;white-space:normal;vertical-align:bottom}td:first-child,th:first-child{text-align:left}
table.summary{font-size:.85em;max-width:100%}table.summary td,table.summary th{padding:3px 6px}
table.summary td{white-space:normal}
.verdict{padding:.6em .8em;border-left:5px solid #888;background:#f6f6f6}
.winning_ticket{border-color:#2e7d32;background:#eef6ee}
.no_ticket_effect{border-color:#b26a00;background:#fdf5e6}
.no_ticket{border-color:#b71c1c;background:#fbeeee}
.badge{font-weight:600;padding:1px 6px;border-radius:3px;color:#fff;display:inline-block}
.badge.winning_ticket{background:#2e7d32}.badge.no_ticket_effect{background:#b26a00}
.badge.no_ticket{background:#b71c1c}.badge.none{background:#555}
.inconclusive{border-color:#455a64;background:#eef1f3}.badge.inconclusive{background:#455a64}
.warn{color:#8a4b00}img{max-width:100%;height:auto}
.banner{padding:.7em 1em;border:2px solid #b71c1c;background:#fbeeee;color:#7a1010;
font-weight:600}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre-wrap}
.caption{color:#555;font-size:.9em}
"""


def _badge_class(verdict):
    """The CSS class of a verdict's badge (grey for n/a and anything unknown)."""
    word = str(verdict).split()[0] if verdict is not None else "none"
    return word if word in ("winning_ticket", "no_ticket_effect", "no_ticket",
                            "inconclusive") else "none"


def _report_html(sections, args, strategies, total_seconds, banner=None):
    """The self-contained HTML report of ``compare`` (``banner``: an incomplete run)."""
    from .stats import REINIT_CONTROLS, VERDICT_CONTROLS, strategy_label

    esc = html.escape
    metric_name = ("test accuracy (R² for regression) "
                   + ("at the end of training" if args.metric == "end"
                      else "at the early-stop iteration"))
    controls = [s for s in strategies if s in VERDICT_CONTROLS]
    summary = _summary_frame(sections)
    badges = summary.copy()
    for col in badges.columns:  # to_html(escape=False) below: escape by hand
        badges[col] = [v if not isinstance(v, str) else esc(v) for v in badges[col]]
    badges["verdict"] = [f"<span class='badge {_badge_class(v)}'>{esc(str(v))}</span>"
                         for v in summary["verdict"]]
    # The summary must fit the text column: the verdict (which may read "n/a
    # (interrupted: ...)") and the interval columns may wrap, an interval only
    # between the difference and its brackets.
    intervals = [col for col in badges.columns if "CI" in col]
    for col in intervals:
        badges[col] = [v.replace(", ", ",\u00a0") if isinstance(v, str) else v
                       for v in badges[col]]
    nth = {col: i + 1 for i, col in enumerate(badges.columns)}
    wrap_css = (",".join(f"table.summary td:nth-child({nth[c]})" for c in ["verdict", *intervals])
                + "{white-space:normal}"
                + f"table.summary td:nth-child({nth['verdict']}),"
                + f"table.summary th:nth-child({nth['verdict']}){{text-align:left}}")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>sklottery compare: do winning tickets exist?</title>",
        f"<style>{_CSS}{wrap_css}</style></head><body>",
        "<h1>Do winning tickets exist? Winning tickets vs controls</h1>",
        f"<p class='banner'>{esc(banner)}</p>" if banner else "",
        f"<h2 id='summary'>Summary</h2><p>One row per data set, judged on {metric_name}. "
        "<em>Level tested</em> is the sparsest winning level for a winning ticket, the "
        "sparsest level where the ticket still matches dense otherwise (or the first level "
        "where it falls short); the difference to random re-initialisation is taken "
        "there.</p>",
        badges.to_html(index=False, escape=False, na_rep="n/a", classes="summary"),
        "<p class='caption'>The interval beside each difference is the 95 % Welch t "
        "interval the verdict's decision at that level is read from, and the p value is "
        "the one-sided p of the same test (ticket better than random reinit), so the two "
        "always agree; no correction for the number of levels is needed, the levels are "
        "tested in a fixed sequence (see below). <em>Warnings</em> counts the notes that "
        "come with a verdict (read them in the data set's section), such as weak evidence "
        "(fewer than 3 trials), a small test set (one test sample worth more than a point "
        "of accuracy), runs cut short or interrupted, levels that lost too many runs to "
        "carry a claim, or undertraining.</p>",
        "<h3>How to read the verdicts</h3><ul>",
        "<li><b>winning_ticket</b>: at some pruning level the ticket <em>matches</em> dense "
        "(shown: the lower bound of the 95 % interval of ticket − dense lies above −margin) "
        "and beats every control that was run "
        f"({esc(', '.join(strategy_label(c) for c in controls))}): the lower bound of "
        "ticket − control lies above 0.</li>",
        "<li><b>no_ticket_effect</b>: the ticket matches dense and every control is shown "
        "<em>equivalent</em> to it (the whole interval of ticket − control inside ±margin, "
        "two one-sided tests): there, the initialisation does not matter. A difference "
        "that is merely not significant is not evidence of no effect.</li>",
        "<li><b>no_ticket</b>: a winning ticket is ruled out: the ticket falls short of "
        "dense by more than the margin at the first pruned level (shown), or a control is "
        "shown better than it wherever it matches.</li>",
        "<li><b>inconclusive</b>: the evidence decides nothing; the sentence says why "
        "(too few trials, no test could run, no reinit control, matching undecided, too "
        "little power) and, where it can, how many trials would decide.</li>",
        "<li>The margin is 1 percentage point of accuracy (or one test sample when the "
        "test set is coarser), 0.01 for R². Testing order: matching is tested from the "
        "least pruned level downward and the advantage over the controls from the most "
        "pruned level upward, each stopping at the first level where it is not shown "
        "(fixed-sequence tests); a winning ticket is claimed where both hold. Every "
        "decision is a one-sided test at 2.5 %, read off the 95 % Welch interval printed "
        "beside it, so intervals and decisions always agree; the chance of any false "
        "winning claim is at most 5 %, however many levels. Differences are ticket − "
        "control (in percentage points for accuracy, in R² for regression); effect size "
        "is Hedges' g. Random re-initialisation controls: "
        f"{esc(', '.join(strategy_label(c) for c in REINIT_CONTROLS))}.</li>",
        "<li>Intervals, here and in summary.csv and tests.csv, are per-comparison 95 % "
        "t intervals: each covers its own difference or mean with 95 % probability, "
        "with no correction for the number of intervals shown. The verdict's decisions "
        "are made as the verdict sentence states: each is read off such an interval, "
        "but a level counts only inside its fixed sequence, so an interval that excludes "
        "0 at a level the sequence did not reach is no claim, and no "
        "contradiction.</li>",
        "<li><b>no retrain</b>: traditional pruning without retraining, at the level "
        "tested: the winning ticket's network trained in the previous round, pruned to "
        "that level and scored as it is (test_acc_no_retrain, R² for regression), "
        "beside the ticket trained after pruning and the dense network.</li>",
        "<li>Table cells and figure lines are mean ± standard deviation over trials. "
        "Shaded bands in the figures are ±1 standard deviation; confidence intervals in "
        "summary.csv are 95 % Student t intervals of the mean over trials, clipped to "
        "the range the mean can take ([0, 100] % for accuracies, widened to the Wilson "
        "interval of the test samples; [0, training length] for the early-stop "
        "iteration).</li></ul>",
    ]
    n_cut = sum(len(sec["cut"]) for sec in sections)
    parts.append("<h3>Runs cut short</h3>")
    if n_cut:
        items = "".join(
            f"<li>{esc(sec['name'])}: {esc(strategy_label(r.strategy))}, trial {r.trial}: "
            f"{esc(r.reason)} ("
            + (f"last completed round {r.last_round:.0f}" if np.isfinite(r.last_round)
               else "no round completed") + ")</li>"
            for sec in sections for r in sec["cut"].itertuples())
        parts.append(f"<p class='warn'>{n_cut} run(s) diverged or were interrupted; their "
                     f"completed rounds are included:</p><ul>{items}</ul>")
    not_run = sum(sec["status"]["not_run"] + sec["status"]["lost"] for sec in sections)
    if not_run:
        parts.append(f"<p class='warn'>{not_run} planned run(s) produced no result: "
                     + "; ".join(f"{esc(sec['name'])}: {esc(sec['status']['text'])}"
                                 for sec in sections
                                 if sec["status"]["not_run"] or sec["status"]["lost"])
                     + ".</p>")
    elif not n_cut:
        parts.append("<p>None: every run completed all its rounds.</p>")
    for sec in sections:
        s = sec["summary"]
        parts.append(
            f"<h2 id='{esc(sec['name'])}'>{esc(sec['name'])}</h2><p>{esc(sec['desc'])}; "
            f"{sec['n']} samples, {s['n_test']} test samples per trial, {s['n_trials']} "
            f"trials; {sec['epochs']} epochs per round; {sec['seconds']:.0f} s.</p>")
        if sec["status"]["interrupted"]:
            parts.append(f"<p class='banner'>INTERRUPTED (Ctrl-C): "
                         f"{esc(sec['status']['text'])}; everything below is from incomplete "
                         "data.</p>")
        label = "n/a" if s["verdict"] is None else s["verdict"]
        parts.append(f"<p class='verdict {_badge_class(label)}'>"
                     f"<span class='badge {_badge_class(label)}'>"
                     f"{esc(label)}</span> {esc(sec['sentence'])}</p>")
        for title, table in sec["tables"]:
            parts.append(f"<p class='caption'>{esc(title)}, {esc(sec['unit'])} (mean ± std "
                         "over trials):</p>")
            parts.append(table.to_html(escape=True, index=False))
        if sec["png"] is not None:
            parts.append(f"<p><img alt='{esc(sec['name'])}: early-stop iteration and test "
                         f"accuracy vs weights remaining' "
                         f"src='data:image/png;base64,{base64.b64encode(sec['png']).decode()}'>"
                         "</p>")
    versions = ", ".join(f"{k} {v}" for k, v in _versions().items())
    command = "python -m sklottery " + " ".join(shlex.quote(a) for a in args.argv)
    parts += [
        "<h2 id='reproduce'>Reproduction</h2><pre>",
        esc(f"command:  {command}\n"
            f"seed:     --random-state {args.random_state} (data splits, initialisations, "
            "data order and control seeds all derive from it)\n"
            f"settings: strategies {', '.join(strategies)}; {args.trials} trials; "
            f"{args.rounds} rounds of {100 * args.pruning_rate:g} % (output layer "
            f"{50 * args.pruning_rate:g} %), granularity {args.granularity}; hidden "
            f"{args.hidden or 'none'}; Adam lr "
            f"{args.lr:g}; batch {args.batch_size}; test fraction {args.test_size:g}; "
            f"device {args.device}; n_jobs {args.n_jobs}\n"
            f"versions: {versions}\n"
            f"machine:  {_machine()}\n"
            f"started:  {args.started}\n"
            f"wall time: {total_seconds:.0f} s"),
        "</pre></body></html>",
    ]
    return "\n".join(parts)


# ----------------------------------------------------------------- reproduce
#: ``compare --methods``: pruning methods as ticket_curve strategies.
METHODS = {"imp": "rewind", "random": "random_mask", "snip": "snip", "grasp": "grasp",
           "synflow": "synflow"}


def _method_strategies(methods):
    """``--methods`` as strategies: the IMP ticket (always, the reference), the methods,
    each PaI mask shuffled within layers, and the controls every verdict and
    sanity check needs (random reinit, the ticket's layer-wise shuffle)."""
    names = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    pai = [m for m in names if m in ("snip", "grasp", "synflow")]
    out = (["rewind"] + [METHODS[m] for m in names if m != "imp"]
           + [f"{m}_shuffle" for m in pai] + ["random", "shuffle_layer"])
    return list(dict.fromkeys(out))


def _resolved_device(device):
    """``--device`` resolved (``auto``: cuda when available), or exit with the reason."""
    from .training import resolve_device

    try:
        return str(resolve_device(device))
    except ValueError as exc:
        raise SystemExit(f"--device: {exc}") from None


def _reproduce_files(names):
    """The files ``reproduce --out`` writes for the experiments ``names`` (None: all)."""
    from .reproduce import EXPERIMENTS

    names = list(EXPERIMENTS) if names is None else names
    return [f"{n}{suffix}" for n in names for suffix in (".csv", "_results.csv", ".txt")]


def _parse_settings(pairs):
    """``--set NAME=VALUE`` flags as a dict; VALUE a Python literal, else the string."""
    import ast

    settings = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"--set {pair!r}: expected NAME=VALUE, e.g. --set trials=5")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        settings[name.strip()] = value
    return settings


def reproduce(args):
    from ._interrupt import experiment_stop, stop_requested
    from ._output import OutputFolder
    from .reproduce import EXPERIMENTS, GPU_SIZED, check_settings, list_experiments, run

    if args.list or not args.names:
        for name, title, paper in list_experiments():
            print(f"{name:<22} {title}\n{'':<22} {paper}")
        if not args.list:
            print("\nname an experiment (or 'all') to run it")
        return 0
    names = list(EXPERIMENTS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise SystemExit(f"unknown experiment(s) {unknown}; see --list")
    mode = "full" if args.full else ("smoke" if args.smoke else "default")
    args.device = _resolved_device(args.device)  # a clear error before anything runs
    settings = _parse_settings(args.settings)
    if args.names == ["all"] and not args.device.startswith("cuda") and mode != "smoke":
        skipped = [n for n in names if n in GPU_SIZED]
        names = [n for n in names if n not in GPU_SIZED]
        print(f"all on {args.device}: skipping the GPU-sized {', '.join(skipped)} (run "
              f"{'it' if len(skipped) == 1 else 'them'} by name, or all with --device cuda)\n",
              flush=True)
    for name in names:  # every --set name, before anything is written or trained
        try:
            check_settings(name, mode, settings)
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"--set: {name}: {exc}") from None
    out = None
    if args.out:
        manifest = {"mode": mode, "device": args.device, "random_state": args.random_state,
                    "settings": settings}  # a resumed run needs the same ones
        out = OutputFolder(args.out, "reproduce", manifest,
                           _reproduce_files, resume=args.resume, overwrite=args.overwrite)
    elif args.resume or args.overwrite:
        raise SystemExit("--resume and --overwrite apply to an --out folder: pass --out.")
    interrupted = False
    with experiment_stop():
        for i, name in enumerate(names):
            if out is not None and out.done(name):
                print(f"{name}: finished in the earlier run (--resume); see "
                      f"{os.path.join(args.out, name + '.txt')}\n", flush=True)
                continue
            result = run(name, mode, random_state=args.random_state, n_jobs=args.n_jobs,
                         device=args.device, settings=settings)
            print(result.to_text() + "\n", flush=True)
            if out is not None:
                out.write(f"{name}.csv", result.claims.assign(experiment=name, mode=mode)
                          .to_csv(index=False))
                if result.results is not None:
                    out.write(f"{name}_results.csv", result.results.to_csv(index=False))
                out.write(f"{name}.txt", result.to_text() + "\n")
                out.finish_unit(name, "interrupted" if result.interrupted else "complete",
                                files=_reproduce_files([name]), seconds=result.seconds)
            if result.interrupted or stop_requested():
                interrupted = True
                left = names[i + 1:]
                print(f"INTERRUPTED (Ctrl-C) in {name}"
                      + (f"; not run: {', '.join(left)}" if left else "")
                      + (f". What finished is in {args.out}; continue with the same command "
                         "and --resume." if out is not None else "."), flush=True)
                break
    if out is not None:
        out.finish("interrupted" if interrupted else "complete")
    return EXIT_INTERRUPTED if interrupted else 0


# -------------------------------------------------------------------- ticket
def ticket_export(args):
    import joblib
    from sklearn.exceptions import NotFittedError

    from .tickets import save_ticket

    if not os.path.isfile(args.model):
        raise SystemExit(f"{args.model}: no such file")
    try:
        model = joblib.load(args.model)
    except Exception as exc:  # any unpickling failure: name the file and the reason
        raise SystemExit(f"{args.model}: cannot be loaded with joblib/pickle "
                         f"({type(exc).__name__}: {exc})") from None
    try:
        path = save_ticket(model, args.out, include_trained=not args.no_trained)
    except (TypeError, ValueError, NotFittedError) as exc:
        raise SystemExit(f"{args.model}: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"{args.out}: cannot be written ({exc})") from None
    print(f"wrote {path} ({os.path.getsize(path)} bytes) from {args.model}")
    return 0


def _shape(shape):
    return " x ".join(map(str, shape))


def ticket_inspect(args):
    from .exceptions import TicketFileError
    from .tickets import load_ticket

    try:
        t = load_ticket(args.file)
    except FileNotFoundError:
        raise SystemExit(f"{args.file}: no such file") from None
    except IsADirectoryError:
        raise SystemExit(f"{args.file}: is a folder, not a ticket file") from None
    except TicketFileError as exc:
        raise SystemExit(str(exc)) from None
    meta = t.meta
    v = meta["versions"]
    est, task, spec = meta["estimator"], meta["task"], meta["module"]
    if task["kind"] == "classification":
        what = f"{len(task['classes'])} classes"
    else:
        what = f"{task['n_outputs']} output(s)"
    kwargs = ", ".join(f"{k}={val!r}" for k, val in spec["kwargs"].items())
    print(f"file       {args.file} ({os.path.getsize(args.file)} bytes)")
    print(f"format     {meta['format']} version {meta['format_version']}, written "
          f"{meta['created']} by sklottery {v['sklottery']}, torch {v['torch']}, numpy "
          f"{v['numpy']}, python {v['python']}")
    print(f"checksums  OK: SHA-256 of the metadata and of all {len(t.entries)} arrays verified")
    print(f"estimator  {est['class']} ({task['kind']}, {task['n_features_in']} features, "
          f"{what})" + (f"; last step of a pipeline after {[n for n, _ in est['pipeline']]} "
                        "(not stored)" if est["pipeline"] else ""))
    if est["params_left_out"]:
        print(f"           settings not stored (not JSON data): "
              f"{', '.join(sorted(est['params_left_out']))}")
    print(f"module     {spec['class']}({kwargs})")
    rows = [(layer["name"], _shape(layer["shape"]), layer["kind"] or "",
             f"{layer['kept']} / {layer['size']}",
             f"{100 * layer['kept'] / layer['size']:.2f} %") for layer in meta["layers"]]
    kept = sum(layer["kept"] for layer in meta["layers"])
    size = sum(layer["size"] for layer in meta["layers"])
    rows.append(("total", "", "", f"{kept} / {size}", f"{100 * kept / max(1, size):.2f} %"))
    head = ("layer", "shape", "kind", "kept / size", "density")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    print("layers")
    for r in [head] + rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    rw = meta["rewind"]
    print("weights    theta0 (surviving values); "
          + (f"thetak at iteration {rw['iteration']}" if rw["stored"]
             else "rewind point = theta0 (rewind_iteration 0)")
          + ("; trained weights of round " + str(meta["trained"]["round"])
             if meta["trained"]["stored"] else "; no trained weights"))
    sched = meta["schedule"]
    pruning = ", ".join(f"{k} {val}" for k, val in sched["pruning"].items())
    print(f"schedule   {pruning}")
    print(f"           {sched['n_rounds']} pruning round(s), sparsity "
          f"{100 * sched['sparsity']:.2f} %, stop reason {sched['stop_reason']}")
    for rec in sched["rounds"]:
        print(f"  round {rec['round']:>3}  {rec['weights_remaining']:8.3f} % left  "
              f"reinit {rec['reinit']}")
    data = meta["data"]["sha256"]
    print(f"data       sha256 {data if data else 'not recorded'}")
    return 0


# ---------------------------------------------------------------------- main
def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m sklottery",
        description="Lottery tickets as scikit-learn estimators: a demo and the "
                    "cross-dataset comparison of winning tickets with controls.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="one IMP run on bundled digits (per-round table)",
                       description="Iterative magnitude pruning of LeNet-300-100 on "
                                   "sklearn's digits with rewinding to theta0; prints one "
                                   "line per round and the final sparsity and accuracy.")
    d.add_argument("--rounds", type=int, default=5, help="pruning rounds (default 5)")
    d.add_argument("--epochs", type=int, default=20, help="epochs per round (default 20)")
    d.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    d.set_defaults(func=demo)

    c = sub.add_parser(
        "compare",
        help="winning tickets vs controls across data sets",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run the winning ticket (IMP with rewinding to theta0) and control strategies on\n"
            "several data sets with replicate trials; print a table per data set and a\n"
            "verdict with its evidence, and write results.csv (one row per data set x\n"
            "strategy x trial x round), summary.csv (mean/std/CI per metric and level),\n"
            "tests.csv (Welch interval, Hedges' g, one-sided p and decision, ticket vs\n"
            "each control), verdicts.csv (column verdict: winning_ticket,\n"
            "no_ticket_effect, no_ticket or inconclusive with its reason, level, effect\n"
            "size, CI and the power statement), one PNG per data set\n"
            "(early-stop iteration and test accuracy vs % weights remaining) and\n"
            "report.html (self-contained: summary, verdicts, tables, figures, how to\n"
            "reproduce).\n\n"
            "Verdicts: a winning ticket matches dense (non-inferiority within a margin of\n"
            "1 point) and beats every control that was run (random reinit, scratch-E/B,\n"
            "random mask) at the same level; matching is tested from the least pruned\n"
            "level down, the advantage from the most pruned up (fixed sequences, one-sided\n"
            "tests at 2.5 %). No ticket effect needs equivalence shown; otherwise the\n"
            "verdict is inconclusive, with how many trials would decide.\n\n"
            "Strategies: rewind (winning ticket), rewind_k (late rewinding), random (ticket\n"
            "mask, new random init: Frankle & Carbin's control), random_mask (random\n"
            "pruning), continue (prune + fine-tune), scratch_e / scratch_b (Liu et al.:\n"
            "same epochs / same compute budget), one_shot, same_sign (Zhou et al.);\n"
            "Frankle et al. 2021's sanity checks shuffle_layer (the ticket's mask shuffled\n"
            "within layers) and invert (the weights IMP ranked lowest), both from the\n"
            "ticket's theta0; pruning at initialization snip, grasp, synflow (the method's\n"
            "mask at the ticket's level, from the trial's theta0) and snip_shuffle,\n"
            "grasp_shuffle, synflow_shuffle (that mask shuffled within layers; or use\n"
            "--methods).\n\n"
            "Defaults are fast (a few minutes on 2 CPU cores with the bundled data sets).\n"
            "Frankle & Carbin's full protocol on LeNet-300-100 is, for instance:\n"
            "  python -m sklottery compare --datasets fashion_mnist --rounds 18 --trials 5\n"
            "      --pruning-rate 0.2\n"
            "      --hidden 300,100 --lr 1.2e-3 --batch-size 60 --min-iterations 50000\n"
            "      --strategies rewind,random,random_mask --n-jobs -1\n"
            "(fashion_mnist needs the data files: see sklottery.datasets.fetch_fashion_mnist;\n"
            "mnist1d needs `pip install mnist1d`.)"
        ),
    )
    c.add_argument("--datasets", default="digits,breast_cancer,wine,iris",
                   help=f"comma-separated, from: {', '.join(DATASETS)} "
                        "(default: digits,breast_cancer,wine,iris)")
    c.add_argument("--strategies", default="rewind,random,random_mask",
                   help="comma-separated strategies, at least one of random, scratch_e, "
                        "scratch_b (default: rewind,random,random_mask)")
    c.add_argument("--methods", default=None,
                   help="compare pruning methods instead: comma-separated from "
                        "imp, random, snip, grasp, synflow (sets --strategies to the IMP "
                        "ticket, the methods at the ticket's levels and each PaI mask "
                        "shuffled within layers, random reinit and the ticket's layer-wise "
                        "shuffle)")
    c.add_argument("--rounds", type=int, default=5,
                   help="pruning rounds (default 5: with the default rate 0.5 and "
                        "--hidden 300,100, 50.5, 25.6, 13.1, 6.8 and 3.5%% of the weights "
                        "left on digits, 3.2-3.3%% on the three smaller sets)")
    c.add_argument("--trials", type=int, default=5,
                   help="replicates per strategy (default 5; fewer than 3 gives a "
                        "weak-evidence warning)")
    c.add_argument("--metric", default="end", choices=["end", "early_stop"],
                   help="what the verdict judges: test accuracy (R² for regression data "
                        "sets) at the end of training (end, default) or at the early-stop "
                        "iteration of minimum validation loss (early_stop)")
    c.add_argument("--pruning-rate", type=float, default=0.5,
                   help="fraction of remaining weights pruned per round, output layer at "
                        "half of it (default 0.5, so that 5 fast rounds reach the sparse "
                        "levels where tickets and controls part; Frankle & Carbin use 0.2 "
                        "with --rounds 18)")
    c.add_argument("--granularity", default="weight", choices=["weight", "neuron", "filter"],
                   help="what a round prunes: single weights (weight, default, Frankle & "
                        "Carbin) or whole neurons/filters (neuron, filter: Liu et al.'s "
                        "structured pruning; scratch_e/scratch_b then train the smaller "
                        "dense architecture)")
    c.add_argument("--hidden", default="300,100",
                   help="hidden layer sizes, comma-separated (default 300,100)")
    c.add_argument("--lr", type=float, default=1.2e-3, help="Adam learning rate (1.2e-3)")
    c.add_argument("--batch-size", type=int, default=60, help="minibatch size (default 60)")
    c.add_argument("--epochs", type=int, default=None,
                   help="epochs per round (default: enough for --min-iterations)")
    c.add_argument("--min-iterations", type=int, default=300,
                   help="with no --epochs: at least this many iterations per round "
                        "(default 300; F&C use 50000)")
    c.add_argument("--test-size", type=float, default=0.25,
                   help="held-out test fraction per trial (default 0.25)")
    c.add_argument("--max-samples", type=int, default=None,
                   help="random subset of each data set (default: all)")
    c.add_argument("--n-jobs", type=int, default=-1,
                   help="parallel runs with joblib, torch threads capped per run so the "
                        "CPUs are not oversubscribed (default -1: one run per CPU)")
    c.add_argument("--backend", default="loky", choices=["loky", "dask"],
                   help="where the parallel runs go: worker processes on this machine "
                        "(loky, default) or a Dask cluster (dask; needs "
                        "pip install 'sklottery[dask]')")
    c.add_argument("--scheduler", default=None,
                   help="with --backend dask: address of a running Dask scheduler, e.g. "
                        "tcp://10.0.0.5:8786 (default: start a local cluster of worker "
                        "processes)")
    c.add_argument("--device", default="cpu",
                   help="where the networks train: cpu (default), cuda, cuda:N, or auto "
                        "(cuda when available)")
    c.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    c.add_argument("--out", default="sklottery_compare",
                   help="output folder (default ./sklottery_compare)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    _output_flags(c, "data sets")
    c.set_defaults(func=compare)

    r = sub.add_parser(
        "reproduce",
        help="re-run published lottery-ticket experiments; published vs measured",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Re-run a published experiment and print, per claim, the published number or\n"
            "pattern beside the measured one and whether the pattern was reproduced.\n"
            "The default is a reduced protocol that runs in minutes on 2 CPU cores\n"
            "(smaller data subsets, fewer iterations; it says what it ran); --full runs\n"
            "the paper's protocol (hours on a CPU); --smoke runs seconds (tests)."),
    )
    r.add_argument("names", nargs="*", help="experiments to run (see --list), or 'all'")
    r.add_argument("--list", action="store_true", help="list the experiments")
    mode = r.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="the paper's protocol")
    mode.add_argument("--smoke", action="store_true", help="a seconds-long run (tests)")
    r.add_argument("--out", default=None,
                   help="folder for NAME.csv (claims), NAME_results.csv and NAME.txt")
    r.add_argument("--n-jobs", type=int, default=None, help="parallel fits (default 1)")
    r.add_argument("--device", default="cpu",
                   help="where the networks train: cpu (default), cuda, cuda:N, or auto "
                        "(cuda when available)"),
    r.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   dest="settings",
                   help="replace a setting of the protocol, e.g. --set trials=5 or --set "
                        "conv.epochs=12 (repeatable; an unknown name lists the experiment's "
                        "settings); the protocol line says what was changed")
    _output_flags(r, "experiments")
    r.set_defaults(func=reproduce)

    t = sub.add_parser(
        "ticket", help="write a fitted estimator's ticket to a file, or inspect a ticket file",
        description="Ticket files (sklottery.tickets): masks, theta0, thetak, trained "
                    "weights, schedule, settings and data hash, with a SHA-256 checksum of "
                    "every entry; a numpy zip, never pickle.")
    tsub = t.add_subparsers(dest="ticket_command", required=True)
    e = tsub.add_parser(
        "export", help="MODEL.pkl (a fitted estimator saved with joblib/pickle) -> OUT.ticket",
        description="Write the ticket of a fitted LotteryTicketClassifier or "
                    "LotteryTicketRegressor (or a pipeline ending in one) saved with "
                    "joblib.dump or pickle. MODEL.pkl is unpickled: export only files you "
                    "trust.")
    e.add_argument("model", help="the estimator's joblib/pickle file")
    e.add_argument("out", help="the ticket file to write (e.g. OUT.ticket)")
    e.add_argument("--no-trained", action="store_true",
                   help="leave the trained weights out (masks, theta0 and thetak only)")
    e.set_defaults(func=ticket_export)
    i = tsub.add_parser(
        "inspect", help="check a ticket file and print what it holds",
        description="Check every checksum of a ticket file, then print its format and "
                    "versions, module, layers (shape, density), schedule and data hash.")
    i.add_argument("file", help="the ticket file")
    i.set_defaults(func=ticket_inspect)
    return parser


def _output_flags(parser, units):
    """--resume and --overwrite: what to do with an --out folder that holds a run."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help=f"continue the run in --out: {units} it finished are kept and "
                            "skipped (same settings needed)")
    group.add_argument("--overwrite", action="store_true",
                       help="replace the run in --out (its files are removed first); "
                            "without --resume or --overwrite an --out that holds a run is "
                            "refused")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    args.started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
