"""Intervals and tests of sklottery.stats on data with a known truth."""

import math

import numpy as np
import pandas as pd
import pytest

from sklottery.stats import compare_to_ticket


# --------------------------------------------------------------------------
# float rounding is not spread
# --------------------------------------------------------------------------
NEXT = np.nextafter(0.9, 1.0)  # 0.9 and the next float: "all 0.9" after rounding


def test_hedges_g_and_welch_on_constant_data_are_nan():
    # ticket "constant" at 0.9 (values differing in the last bit), control at
    # 0.8: the pooled sd is ~6e-17, and dividing by it gave g ~ 1e15.
    a, b = np.array([0.9, NEXT, 0.9]), np.array([0.8, 0.8, 0.8])
    sp = math.sqrt((2 * a.var(ddof=1) + 2 * b.var(ddof=1)) / 4)
    assert 0 < sp < 1e-15 and abs(0.1 / sp) > 1e14  # what the old code divided by
    df = pd.DataFrame({"strategy": ["rewind"] * 3 + ["random"] * 3, "round": 1,
                       "weights_remaining": 50.0, "test_acc": np.r_[a, b]})
    for method in ("welch", "bootstrap"):
        row = compare_to_ticket(df, method=method, random_state=0).iloc[0]
        assert np.isnan(row["hedges_g"]) and np.isnan(row["statistic"])
        assert np.isnan(row["p_value"])
        assert row["ci_low"] == row["ci_high"] == pytest.approx(0.1)


def test_groups_constant_at_rounding_apart_have_no_difference():
    # both groups "0.9": the difference of their means is rounding, 0
    df = pd.DataFrame({"strategy": ["rewind"] * 2 + ["random"] * 2, "round": 1,
                       "weights_remaining": 50.0, "test_acc": [0.9, NEXT, NEXT, NEXT]})
    row = compare_to_ticket(df).iloc[0]
    assert row["diff"] == 0 and row["ci_low"] == 0 and row["ci_high"] == 0
    assert np.isnan(row[["statistic", "p_value", "hedges_g"]].astype(float)).all()


def test_a_small_real_spread_is_not_rounding():
    # one test sample in a million: a real difference, tested as usual
    df = pd.DataFrame({"strategy": ["rewind"] * 3 + ["random"] * 3, "round": 1,
                       "weights_remaining": 50.0,
                       "test_acc": [0.9, 0.900001, 0.900002, 0.8, 0.800001, 0.800002]})
    row = compare_to_ticket(df).iloc[0]
    assert row["hedges_g"] == pytest.approx((1 - 3 / 15) * 0.1 / 1e-6, rel=1e-6)
    assert 0 < row["p_value"] < 1e-6
