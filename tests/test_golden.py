"""Golden values: the same random_state gives the same IMP fits as when recorded.

``tests/golden/imp_golden.json`` (written by ``tests/golden/make_golden.py``)
holds, for 15 configurations, the final masks themselves (packed bits), the
predictions on the training data, the kept weights per layer, the weights
remaining, epochs and early-stop iteration of every round, and a summary of
every layer's trained weights (L2 norm and mean absolute value).

On the machine that recorded it (same CPU, torch build and thread count) a
fit reproduces all of it bit for bit. Another CPU sums matmuls and
convolutions in another order (SIMD width, oneDNN/MKL kernels, threads), so
the comparison is split into what the algorithm fixes and what rounding can
move, with tolerances measured with torch 2.13.0+cpu on an AMD EPYC (Zen 4,
AVX-512) under every kernel dispatch it offers: native;
``ATEN_CPU_CAPABILITY=avx2`` and ``=default``; ``ONEDNN_MAX_CPU_ISA=AVX2``
(with ATen avx2 and ``MKL_ENABLE_INSTRUCTIONS=AVX2``; this one reproduces the
previous, hash-only record exactly, Conv-2 included) and ``=AVX``;
``MKL_CBWR=COMPATIBLE`` (another GEMM path); all of these at once with
ATen default; 2 threads. To provoke the ties that rounding can break, the
training data were also multiplied by ``1 + eps * N(0, 1)`` (8 seeds; eps =
1e-6 is about the relative rounding noise of these sums, 1e-5 ten times it).

Exact on every setting and noise level up to 1e-5: the kept weights per
layer and the weights remaining (the pruning schedule and its rounding rule;
under ``pruning_scope='global'`` only their sum, as a tie across layers can
move one weight between layers' counts), the epochs, and the early-stop
iterations (in the MLP cases the validation losses of the last round's two
grid points are at least 0.035 apart, rounding moves them by at most 1e-6;
Conv-2 evaluates once per round).

Toleranced, PORTABLE (every case, any CPU):

* masks, fraction of a layer's entries that differ: MLP cases 0 on every
  setting, at most 1 % with eps = 1e-6 and 1.25 % with 1e-5 (a weight at
  the threshold swaps and the later rounds train other masks); allowed 4 %.
  Conv-2, trained here for 9 Adam steps a round, is chaotic: up to 1.95 %
  on the settings and with eps <= 1e-6, 4.6 % at 3e-6, and 5.6 to 7.05 %
  however large the noise (1e-5 to 1e-3); allowed 8 %, so that it holds
  whatever a CPU's convolution kernels round.
* predictions agreeing: MLP 100 % on every setting, at least 94.25 % with
  1e-6 and 81.5 % with 1e-5; Conv-2 at least 95.25 % on the settings and
  90 % with any noise; required 70 %.
* layer summaries: MLP within 3e-7 relative on the settings, 4.1e-3 with
  1e-6 and 1.5e-2 with 1e-5; Conv-2 within 4.9e-3 on the settings and
  1.1e-2 with any noise; allowed 3e-2.

SAME_PATH (the MLP cases): masks identical, 99 % of the predictions, layer
summaries within 1e-4; met by every MLP case on every setting. A tie at a
pruning threshold takes a run off that path, so up to MAX_RUNS_OFF_PATH = 3
runs may miss it (measured: none on the settings, 1 with eps = 1e-6, up to
3 of the 12 with 1e-5).

What this still catches (tests below): another strategy on the same schedule
(rewind vs continue moves 10.8 to 13.8 % of a layer's mask entries and
leaves 59.5 % of the predictions; rewind vs same-sign 27.5 to 40 %); Conv-2
continued instead of rewound (four of five layers beyond 8 %, up to 13.6 %);
and through SAME_PATH any change that touches more than three runs, e.g. a
learning rate 10 % higher (1.1 to 2.5 % of a layer's mask entries move,
83.5 to 91.8 % of the predictions agree: within PORTABLE for a single case)
or θk (k=5) for θ0 rewinding. It does not catch a change confined to three
runs and smaller than PORTABLE, or a Conv-2 change smaller than its chaos (a
learning rate 10 % higher moves 8.4 %).
"""

import base64
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sklottery import LotteryTicketClassifier

GOLDEN = Path(__file__).with_name("golden") / "imp_golden.json"

# The cases 'reinit_random' and 'scratch_b' were recorded with the old
# spellings reinit='random' and reinit='scratch_b'; 'fresh' and
# 'fresh_budget' are the same strategies under their new names.

_BASE = dict(hidden_layer_sizes=(32, 16), max_epochs=2, batch_size=40, n_rounds=3,
             learning_rate_init=3e-3, random_state=7)
_CONV2 = dict(module="conv2", input_shape=(1, 8, 8), max_epochs=1, n_rounds=2,
              conv_pruning_rate=0.1)

CASES = {
    "layer_rewind": {},
    "global_scope": dict(pruning_scope="global"),
    "reinit_random": dict(reinit="fresh"),
    "continue": dict(reinit="continue"),
    "same_sign": dict(reinit="same_sign"),
    "scratch_b": dict(reinit="fresh_budget"),
    "one_shot": dict(one_shot=True),
    "late_rewind": dict(rewind_iteration=5),
    "random_criterion": dict(pruning_criterion="random"),
    "magnitude_increase": dict(pruning_criterion="magnitude_increase"),
    "sgd_warmup_decay": dict(optimizer="sgd", lr_warmup=7, alpha=1e-4, learning_rate_init=0.05),
    "target_sparsity": dict(target_sparsity=0.6, n_rounds=1),
    "dropout": dict(dropout=0.2),
    "conv2": _CONV2,
    "initial_masks": "initial_masks",
}

#: What float summation order may move (the module docstring has the
#: measurements behind each number): per layer, the fraction of mask entries
#: that may differ (and at least ``min_mask_entries``), the fraction of the
#: training-set predictions that must agree and the relative tolerance of each
#: layer's weight summary. PORTABLE holds for every case on any CPU (per
#: architecture: Conv-2 here is chaotic); SAME_PATH is what the MLP cases meet
#: when no tie at a pruning threshold went the other way, which may fail for at
#: most MAX_RUNS_OFF_PATH of them.
PORTABLE = {
    "mlp": dict(mask_fraction=0.04, min_mask_entries=2, prediction_agreement=0.7,
                weight_rtol=0.03),
    "conv": dict(mask_fraction=0.08, min_mask_entries=2, prediction_agreement=0.7,
                 weight_rtol=0.03),
}
SAME_PATH = dict(mask_fraction=0.0, min_mask_entries=0, prediction_agreement=0.99,
                 weight_rtol=1e-4)
MAX_RUNS_OFF_PATH = 3
#: Cases that repeat another case's first rounds (target_sparsity continues
#: layer_rewind's schedule, initial_masks trains layer_rewind's ticket): a tie
#: there moves them together, so they count as one run.
SHARED_RUN = {"target_sparsity": "layer_rewind", "initial_masks": "layer_rewind"}


def _kind(case):
    return "conv" if isinstance(case, dict) and "module" in case else "mlp"


def _data():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:400], y[:400]


def _fit(case):
    X, y = _data()
    if case == "initial_masks":
        ticket = LotteryTicketClassifier(**_BASE).fit(X, y)
        est = LotteryTicketClassifier(**{**_BASE, "n_rounds": 0, "random_state": 11})
        return est.fit(X, y, initial_masks=ticket.masks_)
    return LotteryTicketClassifier(**{**_BASE, **case}).fit(X, y)


def pack_mask(mask):
    """``{'shape', 'bits'}``: a boolean mask as base64 of ``np.packbits``."""
    mask = np.asarray(mask, dtype=bool)
    return {"shape": list(mask.shape),
            "bits": base64.b64encode(np.packbits(mask.ravel())).decode("ascii")}


def unpack_mask(packed):
    bits = np.unpackbits(np.frombuffer(base64.b64decode(packed["bits"]), np.uint8))
    return bits[:int(np.prod(packed["shape"]))].astype(bool).reshape(packed["shape"])


def _layer_summary(module):
    """Per layer (module owning parameters): L2 norm and mean |w| of all its parameters."""
    layers = {}
    for name, p in module.named_parameters():
        layers.setdefault(name.rpartition(".")[0], []).append(p.detach().double().ravel())
    out = {}
    for layer, parts in layers.items():
        w = torch.cat(parts)
        out[layer] = [float(f"{float(w.norm()):.7g}"), float(f"{float(w.abs().mean()):.7g}")]
    return out


def fingerprint_of(est):
    X, _ = _data()
    return {
        "pruning_scope": est.pruning_scope,
        "kept": {n: int(m.sum()) for n, m in est.masks_.items()},
        "weights_remaining": [round(r["weights_remaining"], 6) for r in est.rounds_],
        "epochs": [r["epochs"] for r in est.rounds_],
        "early_stop": [r["early_stop_iteration"] for r in est.rounds_],
        "masks": {n: pack_mask(m.detach().cpu().numpy()) for n, m in est.masks_.items()},
        "predictions": np.asarray(est.predict(X)).astype(int).tolist(),
        "layers": _layer_summary(est.net_.module_),
    }


def fingerprint(name, **changes):
    """The golden record of case ``name`` (with ``changes`` to its parameters)."""
    case = CASES[name]
    return fingerprint_of(_fit({**case, **changes} if changes else case))


@functools.lru_cache(maxsize=None)
def _fingerprint_cached(name):
    return fingerprint(name)


def differences(got, want, tol):
    """The ways ``got`` differs from ``want`` beyond ``tol`` (empty: they agree).

    Kept counts (their sum under a global threshold), weights remaining,
    epochs and early-stop iterations must be equal; masks, predictions and the
    layer summaries within ``tol``.
    """
    problems = []
    for key in ("pruning_scope", "weights_remaining", "epochs", "early_stop"):
        if got[key] != want[key]:
            problems.append(f"{key}: {got[key]} != {want[key]}")
    # Per layer, the schedule fixes the kept counts; under one global
    # threshold only their sum is fixed, and a tie across layers may move a
    # weight from one layer's count to another's (the masks check bounds it).
    if want["pruning_scope"] == "global":
        if sum(got["kept"].values()) != sum(want["kept"].values()):
            problems.append(f"kept: {got['kept']} != {want['kept']} (in total)")
    elif got["kept"] != want["kept"]:
        problems.append(f"kept: {got['kept']} != {want['kept']}")
    if set(got["masks"]) != set(want["masks"]):
        return problems + [f"layers: {sorted(got['masks'])} != {sorted(want['masks'])}"]
    for n in want["masks"]:
        a, b = unpack_mask(got["masks"][n]), unpack_mask(want["masks"][n])
        if a.shape != b.shape:
            problems.append(f"masks[{n}]: shape {a.shape} != {b.shape}")
            continue
        differ, allowed = int((a != b).sum()), max(tol["min_mask_entries"],
                                                   int(tol["mask_fraction"] * a.size))
        if differ > allowed:
            problems.append(f"masks[{n}]: {differ} of {a.size} entries differ "
                            f"(> {allowed} allowed)")
    p, q = np.asarray(got["predictions"]), np.asarray(want["predictions"])
    agree = float((p == q).mean()) if p.shape == q.shape else 0.0
    if agree < tol["prediction_agreement"]:
        problems.append(f"predictions: {agree:.1%} agree (< {tol['prediction_agreement']:.0%})")
    for layer, want_stats in want["layers"].items():
        got_stats = got["layers"].get(layer)
        if got_stats is None or not np.allclose(got_stats, want_stats, rtol=tol["weight_rtol"],
                                                atol=0):
            problems.append(f"layers[{layer}]: {got_stats} vs {want_stats} "
                            f"(rtol {tol['weight_rtol']})")
    return problems


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_same_fit_as_recorded(name, golden):
    problems = differences(_fingerprint_cached(name), golden[name],
                           PORTABLE[_kind(CASES[name])])
    assert not problems, "\n".join(problems)


def _runs_off_path(fingerprints, golden):
    return {SHARED_RUN.get(name, name) for name, fp in fingerprints.items()
            if differences(fp, golden[name], SAME_PATH)}


def test_mlp_cases_follow_the_recorded_path(golden):
    fingerprints = {name: _fingerprint_cached(name) for name in CASES
                    if _kind(CASES[name]) == "mlp"}
    off = _runs_off_path(fingerprints, golden)
    assert len(off) <= MAX_RUNS_OFF_PATH, "\n".join(
        f"{name}: {'; '.join(differences(fp, golden[name], SAME_PATH))}"
        for name, fp in fingerprints.items() if SHARED_RUN.get(name, name) in off)


@pytest.mark.parametrize("name, golden_name", [
    ("layer_rewind", "continue"),      # rewind vs prune + fine-tune
    ("layer_rewind", "same_sign"),     # θ0 vs a same-sign reinitialisation
    ("continue", "layer_rewind"),
])
def test_portable_tolerances_catch_another_strategy(name, golden_name, golden):
    # Same schedule, so kept counts, weights remaining, epochs and early stops
    # agree exactly: only the toleranced comparisons can tell them apart.
    problems = differences(_fingerprint_cached(name), golden[golden_name], PORTABLE["mlp"])
    assert problems and all(p.startswith(("masks", "predictions", "layers"))
                            for p in problems), problems
    assert any(p.startswith("masks") for p in problems), problems


def test_portable_tolerances_catch_a_conv_change(golden):
    # Conv-2 pruned and fine-tuned instead of rewound: 9 to 14 % of each
    # layer's mask entries move (the portable 8 % is what any rounding can do)
    problems = differences(fingerprint("conv2", reinit="continue"), golden["conv2"],
                           PORTABLE["conv"])
    assert any(p.startswith("masks") for p in problems), problems


def test_same_path_tolerances_catch_a_subtle_change(golden):
    # A learning rate 10 % higher moves 1 to 2.5 % of a layer's mask entries,
    # no more than a tie cascade can, so PORTABLE lets each case pass; but it
    # takes every case it touches off the recorded path, and more than
    # MAX_RUNS_OFF_PATH of them.
    lr = {"sgd_warmup_decay": 0.055}
    changed = {name: fingerprint(name, learning_rate_init=lr.get(name, 3.3e-3))
               for name in ("layer_rewind", "continue", "one_shot", "sgd_warmup_decay")}
    assert len(_runs_off_path(changed, golden)) > MAX_RUNS_OFF_PATH
    # θk (k=5) instead of θ0 rewinding is off the path too
    assert differences(_fingerprint_cached("layer_rewind"), golden["late_rewind"], SAME_PATH)


def test_masks_round_trip_through_the_packed_form():
    rng = np.random.RandomState(0)
    for shape in [(3,), (64, 1, 3, 3), (10, 7)]:
        mask = rng.rand(*shape) < 0.5
        np.testing.assert_array_equal(unpack_mask(pack_mask(mask)), mask)
