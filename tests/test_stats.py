"""Tests of sklottery.stats on constructed data with known answers."""

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sklottery.stats import (
    STRATEGY_LABELS,
    compare_to_ticket,
    dense_baseline,
    layer_sparsity,
    mask_jaccard,
    holm,
    pairwise_mask_overlap,
    sign_preservation,
    strategy_label,
    summarize_curve,
    weight_movement,
)

# Pure arithmetic on a handful of floats: only rounding error separates the
# implementation from the hand formula.
EXACT = dict(rel=1e-9, abs=1e-12)


def _table(groups, metric="test_acc"):
    """Tidy table from {(strategy, level): values}; round 0 at level 100."""
    rows = []
    for (strategy, level), values in groups.items():
        for trial, v in enumerate(values):
            rows.append(
                dict(
                    strategy=strategy,
                    trial=trial,
                    round=0 if level == 100 else 1,
                    weights_remaining=float(level),
                    **{metric: float(v)},
                )
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# summarize_curve
# --------------------------------------------------------------------------
def test_summarize_curve_known_values():
    df = _table({("rewind", 100): [1, 2, 3, 4], ("rewind", 50): [5.0]})
    out = summarize_curve(df)
    assert list(out.columns) == [
        "strategy", "weights_remaining", "mean", "std", "n", "sem", "ci_low", "ci_high"
    ]
    row = out.iloc[0]
    assert row["weights_remaining"] == 100
    # Hand: mean 2.5, sample variance 5/3, sem = sqrt(5/3)/2, t_{0.975,3}
    # = 3.182446305284263 (table value).
    sem = math.sqrt(5 / 3) / 2
    assert row["mean"] == pytest.approx(2.5, **EXACT)
    assert row["std"] == pytest.approx(math.sqrt(5 / 3), **EXACT)
    assert row["n"] == 4
    assert row["sem"] == pytest.approx(sem, **EXACT)
    assert row["ci_low"] == pytest.approx(2.5 - 3.182446305284263 * sem, rel=1e-9)
    assert row["ci_high"] == pytest.approx(2.5 + 3.182446305284263 * sem, rel=1e-9)
    single = out.iloc[1]
    assert single["n"] == 1 and single["mean"] == 5.0
    assert np.isnan(single[["std", "sem", "ci_low", "ci_high"]].astype(float)).all()


def test_summarize_curve_confidence_changes_width():
    df = _table({("rewind", 100): [1, 2, 3, 4]})
    w95 = summarize_curve(df, confidence=0.95).eval("ci_high - ci_low").iloc[0]
    w50 = summarize_curve(df, confidence=0.50).eval("ci_high - ci_low").iloc[0]
    # Hand: the width ratio is the ratio of t quantiles (3 d.o.f.).
    assert w95 / w50 == pytest.approx(sps.t.ppf(0.975, 3) / sps.t.ppf(0.75, 3), rel=1e-9)


def test_summarize_curve_groups_rounded_levels_and_sorts():
    df = _table(
        {
            ("random", 100): [1, 1],
            ("rewind", 51.2): [1, 3],
            ("rewind", 100): [2, 2],
            ("random", 51.2): [0, 0],
        }
    )
    # Same level up to float noise in another trial must join the 51.2 group.
    extra = df.iloc[[2]].assign(weights_remaining=51.2000000001, test_acc=5.0)
    out = summarize_curve(pd.concat([df, extra]))
    assert list(zip(out["strategy"], out["weights_remaining"])) == [
        ("random", 100.0), ("random", 51.2), ("rewind", 100.0), ("rewind", 51.2)
    ]
    assert out.iloc[3]["n"] == 3
    assert out.iloc[3]["mean"] == pytest.approx(3.0, **EXACT)


def test_summarize_curve_ci_coverage():
    # 2000 samples of n=5 from N(0, 1): the 95% t interval must cover 0 in
    # about 95% of them. Binomial sd of the coverage is sqrt(.95*.05/2000)
    # = 0.0049; 0.02 is four sd (fails if e.g. a z quantile or ddof=0 were
    # used: their coverage at n=5 is about 0.88).
    rng = np.random.default_rng(0)
    n_groups, n = 2000, 5
    df = pd.DataFrame(
        {
            "strategy": np.repeat(np.arange(n_groups), n).astype(str),
            "weights_remaining": 100.0,
            "test_acc": rng.normal(size=n_groups * n),
        }
    )
    out = summarize_curve(df)
    coverage = ((out["ci_low"] <= 0) & (out["ci_high"] >= 0)).mean()
    assert abs(coverage - 0.95) < 0.02


def test_summarize_curve_errors_and_warnings():
    df = _table({("rewind", 100): [1, 2]})
    with pytest.raises(ValueError, match="missing"):
        summarize_curve(df, metric="nope")
    with pytest.raises(ValueError, match="confidence"):
        summarize_curve(df, confidence=1.5)
    two = pd.concat([df.assign(dataset="a"), df.assign(dataset="b")])
    with pytest.warns(UserWarning, match="several datasets"):
        summarize_curve(two)
    out = summarize_curve(two, by=("dataset", "strategy", "weights_remaining"))
    assert list(out["dataset"]) == ["a", "b"]


def test_dense_baseline_ticket_and_pooled():
    df = _table({("rewind", 100): [1, 3], ("random", 100): [10, 10], ("rewind", 50): [0, 0]})
    base = dense_baseline(df)
    assert base["mean"] == 2 and base["std"] == pytest.approx(math.sqrt(2)) and base["n"] == 2
    assert base["source"] == "ticket"
    pooled = dense_baseline(df, pooled=True)
    assert pooled["mean"] == pytest.approx(6.0) and pooled["n"] == 4
    # No dense row for the ticket: falls back to the pooled rows.
    only_random = df[~((df.strategy == "rewind") & (df["round"] == 0))]
    assert dense_baseline(only_random)["source"] == "pooled"
    assert dense_baseline(only_random)["mean"] == 10


# --------------------------------------------------------------------------
# compare_to_ticket
# --------------------------------------------------------------------------
A = np.array([10.0, 12, 14, 16, 18])  # mean 14, variance 10
B = np.array([9.0, 10, 11])  # mean 10, variance 1


def _ab_table():
    return _table({("rewind", 20): A, ("random", 20): B})


def test_welch_against_hand_formula_and_scipy():
    out = compare_to_ticket(_ab_table())
    assert len(out) == 1
    row = out.iloc[0]
    # Hand: se = sqrt(10/5 + 1/3); t = 4 / se; Welch-Satterthwaite
    # df = (7/3)^2 / ((2)^2/4 + (1/3)^2/2) = (49/9) / (19/18) = 98/19.
    se = math.sqrt(10 / 5 + 1 / 3)
    t = 4 / se
    dof = 98 / 19
    assert row["diff"] == pytest.approx(4.0, **EXACT)
    assert row["mean_ticket"] == 14 and row["mean_control"] == 10
    assert row["statistic"] == pytest.approx(t, rel=1e-9)
    assert row["p_value"] == pytest.approx(2 * sps.t.sf(t, dof), rel=1e-9)
    ref = sps.ttest_ind(A, B, equal_var=False)
    assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    half = sps.t.ppf(0.975, dof) * se
    assert row["ci_low"] == pytest.approx(4 - half, rel=1e-9)
    assert row["ci_high"] == pytest.approx(4 + half, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert (row["n_ticket"], row["n_control"], row["method"]) == (5, 3, "welch")


def test_hedges_g_by_hand():
    row = compare_to_ticket(_ab_table()).iloc[0]
    # Hand: pooled sd = sqrt((4*10 + 2*1)/6) = sqrt(7); d = 4/sqrt(7);
    # correction J = 1 - 3/(4*8 - 9) = 20/23; g = 80 / (23 sqrt 7) = 1.31466.
    assert row["hedges_g"] == pytest.approx(80 / (23 * math.sqrt(7)), **EXACT)
    assert row["hedges_g"] == pytest.approx(1.31466, abs=1e-5)


def test_compare_sign_levels_and_columns():
    df = _table(
        {
            ("rewind", 100): [1, 1.1],
            ("rewind", 50): [1, 1.2],
            ("random", 50): [2, 2.2],
            ("random", 25): [2, 2.1],  # no ticket at 25%: no row
            ("continue", 50): [0.5, 0.7],
        }
    )
    out = compare_to_ticket(df)
    assert list(out.columns) == [
        "strategy", "weights_remaining", "mean_ticket", "mean_control", "diff",
        "ci_low", "ci_high", "statistic", "p_value", "hedges_g", "n_ticket",
        "n_control", "method",
    ]
    assert list(zip(out.strategy, out.weights_remaining)) == [("continue", 50.0), ("random", 50.0)]
    assert out.set_index("strategy").loc["random", "diff"] == pytest.approx(-1.0)
    assert out.set_index("strategy").loc["continue", "diff"] == pytest.approx(0.5)
    assert (out.statistic.to_numpy() * out["diff"].to_numpy() > 0).all()


def test_compare_small_and_constant_groups():
    df = _table({("rewind", 50): [1.0], ("random", 50): [0.0, 0.2], ("continue", 50): [0.0]})
    out = compare_to_ticket(df).set_index("strategy")
    # One ticket trial: means and diff given, everything inferential NaN.
    assert out.loc["random", "diff"] == pytest.approx(0.9)
    cols = ["ci_low", "ci_high", "statistic", "p_value", "hedges_g"]
    assert out.loc[["random", "continue"], cols].isna().all().all()
    boot = compare_to_ticket(df, method="bootstrap", random_state=0)
    assert boot[cols].isna().all().all()
    const = _table({("rewind", 50): [1.0, 1.0], ("random", 50): [0.0, 0.0]})
    row = compare_to_ticket(const).iloc[0]
    assert row["ci_low"] == row["ci_high"] == 1.0
    assert np.isnan(row["p_value"]) and np.isnan(row["hedges_g"])


def test_compare_per_dataset():
    df = _ab_table()
    both = pd.concat([df.assign(dataset="x"), df.assign(dataset="y", test_acc=df.test_acc * 2)])
    out = compare_to_ticket(both)
    assert list(out.columns[:2]) == ["dataset", "strategy"]
    assert list(out.dataset) == ["x", "y"]
    assert list(out["diff"]) == pytest.approx([4.0, 8.0])


def test_bootstrap_separated_groups():
    rng = np.random.default_rng(1)
    df = _table({("rewind", 20): rng.normal(1, 0.1, 10), ("random", 20): rng.normal(0, 0.1, 10)})
    out = compare_to_ticket(df, method="bootstrap", n_bootstrap=2000, random_state=0)
    row = out.iloc[0]
    # Groups ten sd apart: no shifted resample reaches the observed
    # difference, so p is its floor 1/(B+1).
    assert row["p_value"] == pytest.approx(1 / 2001, **EXACT)
    assert row["ci_low"] < row["diff"] < row["ci_high"]
    assert row["ci_low"] > 0.8 and row["ci_high"] < 1.2
    assert row["method"] == "bootstrap"
    # Percentile and Welch intervals agree to within the bootstrap's
    # small-sample narrowing (sqrt((n-1)/n) ~ 5%) plus Monte Carlo noise.
    welch = compare_to_ticket(df).iloc[0]
    width_b, width_w = row["ci_high"] - row["ci_low"], welch["ci_high"] - welch["ci_low"]
    assert 0.75 < width_b / width_w < 1.1


def test_bootstrap_same_distribution():
    same = np.array([0.5, 0.7, 0.9, 0.6])
    df = _table({("rewind", 20): same, ("random", 20): same})
    row = compare_to_ticket(df, method="bootstrap", n_bootstrap=500, random_state=0).iloc[0]
    assert row["diff"] == 0 and row["p_value"] == 1.0
    rng = np.random.default_rng(3)
    df = _table({("rewind", 20): rng.normal(0, 1, 30), ("random", 20): rng.normal(0, 1, 30)})
    boot = compare_to_ticket(df, method="bootstrap", random_state=0).iloc[0]
    welch = compare_to_ticket(df).iloc[0]
    # Same distribution (seeded draw, Welch p ~0.5): the bootstrap p is large
    # and, at n=30, close to Welch's; 0.05 covers the Monte Carlo error
    # (sd <= 0.005 at B=10000) and the bootstrap/t discrepancy.
    assert boot["p_value"] > 0.2
    assert abs(boot["p_value"] - welch["p_value"]) < 0.05


def test_bootstrap_reproducible():
    df = _table({("rewind", 20): [1, 2, 3, 4.0], ("random", 20): [2, 3, 3, 5.0]})
    a = compare_to_ticket(df, method="bootstrap", n_bootstrap=300, random_state=7)
    b = compare_to_ticket(df, method="bootstrap", n_bootstrap=300, random_state=7)
    c = compare_to_ticket(df, method="bootstrap", n_bootstrap=300, random_state=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a[["ci_low", "ci_high"]], c[["ci_low", "ci_high"]])
    d = compare_to_ticket(
        df, method="bootstrap", n_bootstrap=300, random_state=np.random.RandomState(0)
    )
    assert np.isfinite(d.p_value).all()


def test_compare_errors():
    df = _ab_table()
    with pytest.raises(ValueError, match="method"):
        compare_to_ticket(df, method="mannwhitney")
    with pytest.raises(ValueError, match="not in results"):
        compare_to_ticket(df, ticket="nope")
    with pytest.raises(ValueError, match="n_bootstrap"):
        compare_to_ticket(df, method="bootstrap", n_bootstrap=0)
    only_ticket = df[df.strategy == "rewind"]
    assert compare_to_ticket(only_ticket).empty


# --------------------------------------------------------------------------
# Holm, intervals, labels (the verdicts are tested in test_verdicts.py)
# --------------------------------------------------------------------------
def test_holm_by_hand():
    # sorted p: 0.01 (x3), 0.03 (x2), 0.04 (x1) -> 0.03, 0.06, 0.06 (monotone)
    np.testing.assert_allclose(holm([0.04, 0.01, 0.03]), [0.06, 0.03, 0.06])
    out = holm([0.5, np.nan, 0.2])
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.5) and out[2] == pytest.approx(0.4)
    assert holm([0.9, 0.8])[0] == 1.0 or holm([0.9, 0.8])[0] == pytest.approx(0.9)


def test_accuracy_ci_stays_inside_unit_interval():
    # The default is the t interval (it has its coverage at 3 trials, the
    # percentile bootstrap does not: tests/test_intervals.py), clipped to
    # [0, 1]; clipping cannot lower the coverage of a mean inside [0, 1].
    df = _table({("rewind", 50): [1.0, 0.96, 1.0], ("rewind", 100): [0.0, 0.02, 0.0]})
    out = summarize_curve(df)
    assert out.attrs["ci_method"] == "t"
    assert (out["ci_low"] >= 0).all() and (out["ci_high"] <= 1).all()
    # unclipped, the t interval would leave [0, 1] on both sides
    half = sps.t.ppf(0.975, 2) * out["sem"]
    assert ((out["mean"] + half > 1) | (out["mean"] - half < 0)).all()
    assert list(out["ci_high"]) == [pytest.approx(0.02 / 3 + half[0]), 1.0]
    assert list(out["ci_low"]) == [0.0, pytest.approx(2.96 / 3 - half[1])]
    pd.testing.assert_frame_equal(summarize_curve(df, ci_method="t"), out)
    boot = summarize_curve(df, ci_method="bootstrap")
    assert boot.attrs["ci_method"] == "bootstrap"
    assert (boot["ci_low"] >= 0).all() and (boot["ci_high"] <= 1).all()
    with pytest.raises(ValueError, match="ci_method"):
        summarize_curve(df, ci_method="wald")


def test_compare_skips_the_dense_round():
    df = _table({("rewind", 100): [0.9, 0.91], ("random_mask", 100): [0.9, 0.91],
                 ("rewind", 50): [0.9, 0.92], ("random_mask", 50): [0.8, 0.81]})
    out = compare_to_ticket(df)
    assert list(out["weights_remaining"]) == [50.0]


def test_strategy_labels():
    assert strategy_label("rewind") == STRATEGY_LABELS["rewind"] == "winning ticket (rewind)"
    assert strategy_label("my_new_control") == "my new control"


# --------------------------------------------------------------------------
# mask analysis
# --------------------------------------------------------------------------
MASK_A = {"l1": np.array([[1, 0], [1, 1]]), "l2": np.array([0.0, 0.0, 1.0])}
MASK_B = {"l1": np.array([[1, 1], [0, 1]]), "l2": np.array([0.0, 0.0, 0.0])}


def test_layer_sparsity():
    out = layer_sparsity(MASK_A)
    assert list(out.index) == ["l1", "l2", "__total__"]
    assert list(out.columns) == ["n_weights", "n_remaining", "fraction_remaining"]
    assert out["fraction_remaining"].tolist() == pytest.approx([3 / 4, 1 / 3, 4 / 7])
    assert out.loc["__total__", "n_weights"] == 7


def test_mask_jaccard_by_hand():
    out = mask_jaccard(MASK_A, MASK_B)
    assert list(out.columns) == ["n_intersection", "n_union", "jaccard"]
    # l1: kept {00,10,11} vs {00,01,11}: |and| = 2, |or| = 4.
    # l2: {2} vs {}: 0/1. Total: 2/5.
    assert out["jaccard"].tolist() == pytest.approx([0.5, 0.0, 0.4])
    assert out.loc["l1", "n_intersection"] == 2 and out.loc["__total__", "n_union"] == 5
    empty = {"l": np.zeros(3)}
    both_empty = mask_jaccard(empty, empty)
    assert both_empty["jaccard"].tolist() == [1.0, 1.0]
    assert mask_jaccard(MASK_A, MASK_A)["jaccard"].tolist() == [1.0, 1.0, 1.0]


def test_mask_functions_accept_torch_tensors():
    torch = pytest.importorskip("torch")
    ta = {k: torch.tensor(v, requires_grad=False) for k, v in MASK_A.items()}
    tb = {k: torch.tensor(v) for k, v in MASK_B.items()}
    assert mask_jaccard(ta, tb)["jaccard"].tolist() == pytest.approx([0.5, 0.0, 0.4])
    w = {"l1": torch.ones(2, 2, requires_grad=True), "l2": torch.ones(3, requires_grad=True)}
    assert sign_preservation(w, w, ta).loc["__total__", "fraction_preserved"] == 1.0


def test_mask_validation():
    with pytest.raises(ValueError, match="shape"):
        mask_jaccard({"l": np.ones(3)}, {"l": np.ones(4)})
    with pytest.raises(ValueError, match="lacks"):
        mask_jaccard({"l": np.ones(3), "m": np.ones(1)}, {"l": np.ones(3)})
    with pytest.raises(ValueError, match="absent"):
        mask_jaccard({"l": np.ones(3)}, {"l": np.ones(3), "m": np.ones(1)})
    with pytest.raises(TypeError):
        layer_sparsity([np.ones(3)])


def test_pairwise_mask_overlap():
    c = {"l1": np.array([[0, 0], [0, 1]]), "l2": np.array([0, 0, 1])}
    out = pairwise_mask_overlap([MASK_A, MASK_B, c])
    mat = out.to_numpy()
    assert mat.shape == (3, 3)
    np.testing.assert_array_equal(np.diag(mat), 1.0)
    np.testing.assert_array_equal(mat, mat.T)
    # A vs C: l1 {00,10,11} & {11} = 1, l2 {2} & {2} = 1 -> 2 / 4.
    # B vs C: l1 {00,01,11} & {11} = 1, union 3; l2 0 / 1 -> 1 / 4.
    assert mat[0, 1] == pytest.approx(0.4)
    assert mat[0, 2] == pytest.approx(0.5)
    assert mat[1, 2] == pytest.approx(0.25)
    named = pairwise_mask_overlap({"a": MASK_A, "b": MASK_B}, layer="l1")
    assert list(named.index) == ["a", "b"] and named.loc["a", "b"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="Unknown layer"):
        pairwise_mask_overlap([MASK_A, MASK_B], layer="zzz")


def test_sign_preservation_by_hand():
    init = {"l1": np.array([[1.0, -1.0], [2.0, -2.0]]), "l2": np.array([1.0, 1.0, -1.0]),
            "bias": np.zeros(2)}
    final = {"l1": np.array([[0.5, 1.0], [-1.0, -3.0]]), "l2": np.array([-1.0, 1.0, -5.0])}
    masks = {"l1": np.array([[1, 1], [1, 0]]), "l2": np.array([0, 0, 1])}
    out = sign_preservation(init, final, masks)
    assert list(out.columns) == ["n_kept", "n_sign_preserved", "fraction_preserved"]
    # l1 kept: (+,+) same, (-,+) flip, (+,-) flip -> 1/3 (the -2 -> -3 entry is
    # pruned). l2 kept: (-,-) same -> 1/1. Total 2/4.
    assert out["fraction_preserved"].tolist() == pytest.approx([1 / 3, 1.0, 0.5])
    assert out.loc["l1", "n_kept"] == 3
    none_kept = sign_preservation(init, final, {"l1": np.zeros((2, 2))})
    assert np.isnan(none_kept.loc["l1", "fraction_preserved"])
    with pytest.raises(ValueError, match="lacks"):
        sign_preservation({"l1": init["l1"]}, final, masks)


def test_weight_movement_by_hand():
    init = {"w": np.array([1.0, 2.0, 3.0, 4.0]), "v": np.array([0.0, 1.0])}
    final = {"w": np.array([1.5, 2.0, 1.0, 4.0]), "v": np.array([2.0, 1.0])}
    masks = {"w": np.array([1, 1, 0, 0]), "v": np.array([1, 1])}
    out = weight_movement(init, final, masks)
    assert list(out.columns) == [
        "mean_movement_kept", "mean_movement_pruned", "n_kept", "n_pruned"
    ]
    # w: kept |0.5|, |0| -> 0.25; pruned |2|, |0| -> 1.0.
    # v: kept |2|, |0| -> 1.0; nothing pruned -> NaN.
    # total: kept (0.5 + 2) / 4 = 0.625; pruned 2 / 2 = 1.0.
    assert out.loc["w", "mean_movement_kept"] == pytest.approx(0.25)
    assert out.loc["w", "mean_movement_pruned"] == pytest.approx(1.0)
    assert out.loc["v", "mean_movement_kept"] == pytest.approx(1.0)
    assert np.isnan(out.loc["v", "mean_movement_pruned"])
    assert out.loc["__total__", "mean_movement_kept"] == pytest.approx(0.625)
    assert out.loc["__total__", "mean_movement_pruned"] == pytest.approx(1.0)
    assert out.loc["__total__", ["n_kept", "n_pruned"]].tolist() == [4, 2]


def _module_level_imports(path):
    """(top-level module, relative level) of every import at module level."""
    out = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            out += [(a.name.split(".")[0], 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append(((node.module or "").split(".")[0], node.level))
    return out


def test_no_heavy_imports_at_module_level():
    # stats must stay torch-free and plotting matplotlib-free at import time.
    root = Path(__file__).resolve().parents[1] / "sklottery"
    banned = {"torch", "skorch", "matplotlib"}
    package = root / "stats"
    files = sorted(package.glob("*.py"))
    # guard against the check passing vacuously (package moved or renamed)
    assert {f.name for f in files} >= {"__init__.py", "curves.py", "masks.py", "verdicts.py"}
    assert not (root / "stats.py").exists()
    for path in files:
        for name, level in _module_level_imports(path):
            where = (f"stats/{path.name}", name, level)
            assert level == 0 and name not in banned or level == 1, where
            # only siblings inside the package: ``from ..analysis import``
            # (or ``from sklottery import``) would pull torch in via estimators.
            assert level != 0 or name != "sklottery", where
    for name, level in _module_level_imports(root / "plotting.py"):
        assert level or name not in {"torch", "matplotlib"}, ("plotting.py", name)


def test_no_heavy_imports_check_catches_offenders(tmp_path):
    # the checker above must see every kind of offending import
    cases = {"import torch.nn": ("torch", 0), "from skorch import NeuralNet": ("skorch", 0),
             "import matplotlib.pyplot as plt": ("matplotlib", 0),
             "from ..analysis import ticket_curve": ("analysis", 2)}
    for code, expected in cases.items():
        f = tmp_path / "m.py"
        f.write_text(f"x = 1\n{code}\n")
        assert expected in _module_level_imports(f)


def test_accuracy_difference_ci_stays_inside_plus_minus_one():
    # Two wildly spread groups of 2: the Welch interval (t with ~1 dof) is
    # far wider than the [-1, 1] a difference of two accuracies can take.
    df = _table({("rewind", 50): [0.0, 1.0], ("random", 50): [0.9, 0.2]})
    row = compare_to_ticket(df).iloc[0]
    assert row["ci_low"] == -1.0 and row["ci_high"] == 1.0
    loss = _table({("rewind", 50): [0.0, 1.0], ("random", 50): [0.9, 0.2]}, metric="loss")
    wide = compare_to_ticket(loss, metric="loss").iloc[0]
    assert wide["ci_low"] < -1 and wide["ci_high"] > 1  # not a proportion: not clipped


