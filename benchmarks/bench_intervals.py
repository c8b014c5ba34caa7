"""Coverage of sklottery's confidence intervals on simulated trials with a known truth.

A lottery-ticket experiment has 2 to 5 trials per strategy and level. This
script draws many such groups of trial accuracies from a distribution whose
mean is known, runs :func:`sklottery.stats.summarize_curve` and
:func:`sklottery.stats.compare_to_ticket` on them, and prints the fraction of
groups whose nominal 95 % interval contains the true mean (the coverage):

* ``summarize_curve``: the default interval (``ci_method='auto'``: Student t,
  widened to the Wilson interval of the pooled test samples for accuracies
  with an ``n_test`` column, clipped to [0, 1]), the plain t interval
  (``'t'``) and the percentile bootstrap (``'bootstrap'``, the default before
  the t interval replaced it), at 2, 3 and 5 trials;
* ``compare_to_ticket``: coverage of the interval of the difference (true
  difference 0) and the rate of p < 0.05 under that null, for Welch's test
  (the default) and the bootstrap.

Scenarios (accuracy of one trial, as a fraction):

* ``normal sd 0.3 pp`` and ``normal sd 2 pp``: 0.9 plus normal noise, no
  ``n_test`` column (a continuous metric: the default is the t interval);
* ``binomial 100 @ 0.90``: k / 100 with k ~ Binomial(100, 0.9) (test-set
  noise of 100 test samples: discrete and skewed, sd 3 pp);
* ``binomial 38 @ 0.95`` and ``binomial 38 @ 0.99``: iris' 38 test samples
  near the ceiling (trials often score the same).

Run::

    python benchmarks/bench_intervals.py                # 20000 / 4000 groups
    python benchmarks/bench_intervals.py --groups 2000 --boot-groups 500

The Monte-Carlo standard error of a coverage c from G groups is
``sqrt(c (1 - c) / G)``: 0.0015 at c = 0.95 and G = 20000, 0.007 at
c = 0.75 and G = 4000.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from sklottery.stats import compare_to_ticket, summarize_curve

#: name: (true mean, draw(rng, size), test samples per trial or None)
SCENARIOS = {
    "normal sd 0.3 pp": (0.9, lambda rng, size: 0.9 + 0.003 * rng.standard_normal(size), None),
    "normal sd 2 pp": (0.9, lambda rng, size: 0.9 + 0.02 * rng.standard_normal(size), None),
    "binomial 100 @ 0.90": (0.9, lambda rng, size: rng.binomial(100, 0.9, size) / 100, 100),
    "binomial 38 @ 0.95": (0.95, lambda rng, size: rng.binomial(38, 0.95, size) / 38, 38),
    "binomial 38 @ 0.99": (0.99, lambda rng, size: rng.binomial(38, 0.99, size) / 38, 38),
}


def groups_table(draw, n_groups, n_trials, n_test, rng):
    """``n_groups`` groups of ``n_trials`` accuracies, one strategy per group.

    With ``n_test=None`` the table has no ``n_test`` column (the default
    interval is then the t interval).
    """
    df = pd.DataFrame({
        "strategy": np.repeat(np.arange(n_groups), n_trials).astype(str),
        "round": 1,
        "weights_remaining": 50.0,
        "test_acc": draw(rng, n_groups * n_trials),
    })
    return df if n_test is None else df.assign(n_test=n_test)


def coverage(summary, truth):
    return float(((summary["ci_low"] <= truth) & (summary["ci_high"] >= truth)).mean())


def mean_coverage(n_groups, n_boot_groups, n_bootstrap, seed):
    rows = []
    for name, (truth, draw, n_test) in SCENARIOS.items():
        for n in (2, 3, 5):
            rng = np.random.default_rng([seed, n, len(rows)])
            big = groups_table(draw, n_groups, n, n_test, rng)
            small = big[big["strategy"].astype(int) < n_boot_groups]
            auto = summarize_curve(big)
            t = summarize_curve(big, ci_method="t")
            boot = summarize_curve(small, ci_method="bootstrap", n_bootstrap=n_bootstrap,
                                   random_state=seed)
            width = (auto["ci_high"] - auto["ci_low"]).mean() / (t["ci_high"] - t["ci_low"]).mean()
            rows.append({"scenario": name, "trials": n,
                         f"bootstrap (old, {n_boot_groups})": coverage(boot, truth),
                         f"t ({n_groups})": coverage(t, truth),
                         f"auto = t+wilson (new, {n_groups})": coverage(auto, truth),
                         "width auto / t": width})
    return pd.DataFrame(rows)


def difference_coverage(n_pairs, n_bootstrap, seed):
    rows = []
    for name, (truth, draw, n_test) in SCENARIOS.items():
        if name.startswith("binomial 38 @ 0.99"):
            continue  # most pairs are constant there: no test
        for n in (2, 3, 5):
            rng = np.random.default_rng([seed, 100 + n, len(rows)])
            tick = groups_table(draw, n_pairs, n, n_test, rng)
            ctrl = groups_table(draw, n_pairs, n, n_test, rng)
            df = pd.concat([tick.assign(dataset=tick["strategy"], strategy="rewind"),
                            ctrl.assign(dataset=ctrl["strategy"], strategy="random")])
            out = {"scenario": name, "trials": n}
            for method in ("welch", "bootstrap"):
                cmp = compare_to_ticket(df, method=method, n_bootstrap=n_bootstrap,
                                        random_state=seed)
                cmp = cmp.dropna(subset=["ci_low"])
                out[f"{method} CI coverage"] = coverage(cmp, 0.0)
                tested = cmp["p_value"].dropna()
                out[f"{method} P(p<0.05)"] = float((tested < 0.05).mean())
            rows.append(out)
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=20000,
                        help="simulated groups per cell for the t intervals")
    parser.add_argument("--boot-groups", type=int, default=4000,
                        help="simulated groups per cell for the bootstrap intervals")
    parser.add_argument("--pairs", type=int, default=2000,
                        help="simulated ticket/control pairs per cell (compare_to_ticket)")
    parser.add_argument("--n-bootstrap", type=int, default=10000,
                        help="bootstrap resamples, as in the library's default")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    start = time.perf_counter()
    print("Coverage of the 95 % interval of a mean accuracy (summarize_curve); "
          "simulated groups per method in parentheses")
    print(mean_coverage(args.groups, args.boot_groups, args.n_bootstrap, args.seed)
          .to_string(index=False, float_format="%.3f"))
    print(f"\nTicket - control with no true difference ({args.pairs} pairs per cell): "
          "coverage of the 95 % interval of the difference and rate of p < 0.05")
    print(difference_coverage(args.pairs, args.n_bootstrap, args.seed)
          .to_string(index=False, float_format="%.3f"))
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
