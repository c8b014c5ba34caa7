"""Ticket files (sklottery.tickets): exact round trip, size, checks on load, CLI."""

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

from sklottery import LotteryTicketClassifier, LotteryTicketRegressor
from sklottery.__main__ import main
from sklottery.exceptions import TicketFileError
from sklottery.tickets import (
    FORMAT_VERSION,
    Ticket,
    data_sha256,
    load_ticket,
    save_ticket,
)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:300], y[:300]


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32)[:200], y[:200]


def mlp(**kw):
    params = dict(hidden_layer_sizes=(32, 16), max_epochs=1, batch_size=50, n_rounds=3,
                  pruning_rate=0.6, learning_rate_init=5e-3, random_state=0)
    params.update(kw)
    return LotteryTicketClassifier(**params)


def conv2(**kw):
    return mlp(module="conv2", input_shape=(1, 8, 8), module_params={"widths": (4, 4, 16, 16)},
               hidden_layer_sizes=(300, 100), **kw)


def regressor(**kw):
    params = dict(hidden_layer_sizes=(16, 8), max_epochs=2, batch_size=32, n_rounds=2,
                  pruning_rate=0.6, learning_rate_init=5e-3, random_state=0)
    params.update(kw)
    return LotteryTicketRegressor(**params)


CASES = {
    "mlp": (mlp, "digits", {}),
    "mlp_late_rewind": (mlp, "digits", {"rewind_iteration": 2}),
    "conv2_late_rewind": (conv2, "digits", {"rewind_iteration": 3}),
    "regressor": (regressor, "diabetes", {}),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def fitted(request, tmp_path_factory):
    make, data, kw = CASES[request.param]
    X, y = request.getfixturevalue(data)
    est = make(**kw).fit(X, y)
    path = str(tmp_path_factory.mktemp("tickets") / f"{request.param}.ticket")
    est.save_ticket(path)
    return est, path, X


@pytest.fixture(scope="module")
def mlp_ticket(digits, tmp_path_factory):
    X, y = digits
    est = mlp(rewind_iteration=2).fit(X, y)
    path = str(tmp_path_factory.mktemp("ticket") / "mlp.ticket")
    save_ticket(est, path)
    return est, path


def bits(t):
    """A tensor's bytes: equal bits, not merely equal values."""
    return t.detach().cpu().contiguous().numpy().tobytes()


def assert_same_bits(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert bits(a[k]) == bits(b[k]), k


def masked(state, masks):
    """``state`` with the pruned positions of the prunable weights at zero."""
    return {k: torch.where(masks[k], v, torch.zeros_like(v)) if k in masks else v
            for k, v in state.items()}


# ------------------------------------------------------------------ round trip
def test_round_trip_is_bit_exact(fitted):
    est, path, _ = fitted
    t = load_ticket(path)
    assert isinstance(t, Ticket)
    masks = {k: m.cpu() for k, m in est.masks_.items()}
    assert_same_bits(t.masks, masks)
    assert all(m.dtype == torch.bool for m in t.masks.values())
    assert_same_bits(t.init_params, masked(est.init_params_, masks))
    assert_same_bits(t.trained_params, est.net_.module_.state_dict())
    assert_same_bits(t.rewind_params, masked(est.rewind_params_, masks))
    if est.rewind_iteration:
        assert t.meta["rewind"]["stored"]
        assert bits(t.rewind_params[next(iter(masks))]) != bits(t.init_params[next(iter(masks))])
    else:
        assert t.rewind_params is t.init_params and t.meta["rewind"]["same_as"] == "init"
    assert t.density() == pytest.approx(
        {**{k: float(m.float().mean()) for k, m in masks.items()}, "total": 1 - est.sparsity_})
    assert t.data_sha256 == est.data_sha256_
    assert t.meta["format_version"] == FORMAT_VERSION
    assert [r["weights_remaining"] for r in t.meta["schedule"]["rounds"]] == \
        [r["weights_remaining"] for r in est.rounds_]
    assert [r["reinit"] for r in t.meta["schedule"]["rounds"]] == [r["reinit"] for r in est.rounds_]
    assert t.meta["schedule"]["pruning"]["pruning_rate"] == est.pruning_rate


def test_module_is_the_network_pruned_in_torch_prune_style(fitted):
    est, path, X = fitted
    t = load_ticket(path)
    module = t.module()
    assert not module.training
    buffers = dict(module.named_buffers())
    params = dict(module.named_parameters())
    for name, mask in t.masks.items():
        owner = name.rpartition(".")[0]
        assert torch.equal(buffers[f"{owner}.weight_mask"].bool(), mask)
        assert f"{owner}.weight_orig" in params
    with torch.no_grad():
        expected = est.net_.module_.eval()(torch.from_numpy(X[:16]))
        assert torch.equal(module(torch.from_numpy(X[:16])), expected)
    init = t.module(weights="init")
    owner = next(iter(t.masks)).rpartition(".")[0]
    assert torch.equal(dict(init.named_parameters())[f"{owner}.weight_orig"],
                       t.init_params[f"{owner}.weight"])


def test_ticket_without_trained_weights(mlp_ticket, tmp_path):
    est, _ = mlp_ticket
    path = est.save_ticket(tmp_path / "lean.ticket", include_trained=False)
    t = load_ticket(path)
    assert t.trained_params is None and not t.meta["trained"]["stored"]
    assert_same_bits(t.masks, {k: m.cpu() for k, m in est.masks_.items()})
    assert not any(e.startswith("trained/") for e in t.entries)
    with pytest.raises(ValueError, match="include_trained=False"):
        t.module(weights="trained")
    t.module()  # θ0 under the masks
    assert os.path.getsize(path) < os.path.getsize(mlp_ticket[1])


def test_settings_and_what_is_left_out(digits, tmp_path):
    X, y = digits
    est = mlp(n_rounds=1, callbacks=[("noop", _NoOp())]).fit(X, y)
    t = load_ticket(est.save_ticket(tmp_path / "t.ticket"))
    params = t.meta["estimator"]["params"]
    assert params["hidden_layer_sizes"] == [32, 16] and params["pruning_rate"] == 0.6
    assert t.meta["estimator"]["params_left_out"] == {"callbacks": "list"}
    assert t.meta["task"]["classes"] == list(range(10))
    assert t.meta["versions"]["torch"] == torch.__version__


class _NoOp(Callback):
    """A skorch callback that does nothing: not JSON data."""


def test_pipeline_last_step_is_saved(digits, tmp_path):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), mlp(n_rounds=1)).fit(X, y)
    t = load_ticket(save_ticket(pipe, tmp_path / "p.ticket"))
    assert t.meta["estimator"]["pipeline"] == [
        ["standardscaler", "sklearn.preprocessing._data.StandardScaler"]]
    with pytest.raises(TypeError, match="needs a fitted LotteryTicketClassifier"):
        save_ticket(StandardScaler(), tmp_path / "x.ticket")


# ----------------------------------------------------------------------- size
def test_sparse_ticket_is_much_smaller_than_a_pickle(digits, tmp_path):
    """Measured: ticket 13.8 kB, pickle 39.6 kB, torch.save of the dense states 460 kB."""
    X, y = digits
    est = mlp(hidden_layer_sizes=(300, 100), n_rounds=5).fit(X, y)
    assert est.sparsity_ > 0.98
    ticket = os.path.getsize(est.save_ticket(tmp_path / "sparse.ticket"))
    pickled = len(pickle.dumps(est))
    buf = io.BytesIO()
    torch.save({"init": est.init_params_, "trained": est.net_.module_.state_dict(),
                "masks": est.masks_}, buf)
    assert ticket * 2 < pickled, (ticket, pickled)
    assert ticket * 20 < len(buf.getvalue()), (ticket, len(buf.getvalue()))


# --------------------------------------------------------- reading without us
PLAIN_READER = textwrap.dedent('''
    import hashlib, json, sys
    sys.modules["sklottery"] = None          # any import of sklottery now fails
    import numpy as np
    import torch

    path, out = sys.argv[1], sys.argv[2]
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"][()]))
    integrity = json.loads(str(z["integrity"][()]))
    assert hashlib.sha256(str(z["meta"][()]).encode()).hexdigest() == integrity["meta"]
    result = {}
    masks = {}
    for layer in meta["layers"]:
        n = int(np.prod(layer["shape"]))
        bits = np.unpackbits(z["mask/" + layer["name"]], count=n)
        masks[layer["name"]] = torch.from_numpy(bits.astype(bool).reshape(layer["shape"]))
        result["mask/" + layer["name"]] = masks[layer["name"]].numpy()
    for prefix in ("init/", "rewind/", "trained/"):
        for t in meta["tensors"]:
            if prefix + t["name"] not in z.files:
                continue
            a = z[prefix + t["name"]]
            digest = hashlib.sha256(
                (a.dtype.str + "|" + ",".join(map(str, a.shape)) + "|").encode()
                + a.tobytes()).hexdigest()
            assert digest == integrity["entries"][prefix + t["name"]]
            if t["name"] in masks:
                full = np.zeros(t["shape"], dtype=a.dtype)
                full[masks[t["name"]].numpy()] = a
                a = full
            result[prefix + t["name"]] = torch.from_numpy(a.reshape(t["shape"])).numpy()
    np.savez(out, **result)
    assert not any(m == "sklottery" or m.startswith("sklottery.") for m in sys.modules
                   if sys.modules[m] is not None)
''')


def test_plain_numpy_torch_reader_gets_the_same_bits(mlp_ticket, tmp_path):
    est, path = mlp_ticket
    script = tmp_path / "reader.py"
    script.write_text(PLAIN_READER)
    out = tmp_path / "plain.npz"
    subprocess.run([sys.executable, str(script), path, str(out)], check=True, cwd=tmp_path)
    got = np.load(out)
    masks = {k: m.cpu() for k, m in est.masks_.items()}
    expected = {f"mask/{k}": m for k, m in masks.items()}
    for prefix, state in (("init/", masked(est.init_params_, masks)),
                          ("rewind/", masked(est.rewind_params_, masks)),
                          ("trained/", est.net_.module_.state_dict())):
        expected.update({prefix + k: v for k, v in state.items()})
    assert sorted(got.files) == sorted(expected)
    for key, tensor in expected.items():
        a = tensor.detach().cpu().numpy()
        assert got[key].dtype == a.dtype and got[key].shape == a.shape, key
        assert got[key].tobytes() == a.tobytes(), key


# ----------------------------------------------------------- checks on load
def rewrite(src, dst, edit_meta=None, edit_arrays=None, fix_checksums=True):
    """Copy a ticket, editing its metadata or arrays (plain numpy), checksums optionally fixed."""
    with np.load(src, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    meta = json.loads(str(entries["meta"][()]))
    integrity = json.loads(str(entries["integrity"][()]))
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(entries)
    text = json.dumps(meta)
    entries["meta"] = np.array(text)
    if fix_checksums:
        integrity["meta"] = hashlib.sha256(text.encode()).hexdigest()
        for k, a in entries.items():
            if k not in ("meta", "integrity"):
                integrity["entries"][k] = hashlib.sha256(
                    f"{a.dtype.str}|{','.join(map(str, a.shape))}|".encode()
                    + np.ascontiguousarray(a).tobytes()).hexdigest()
        entries["integrity"] = np.array(json.dumps(integrity))
    with open(dst, "wb") as f:
        np.savez_compressed(f, **entries)
    return str(dst)


def test_rewrite_helper_alone_keeps_a_valid_ticket(mlp_ticket, tmp_path):
    t = load_ticket(rewrite(mlp_ticket[1], tmp_path / "copy.ticket"))
    assert_same_bits(t.trained_params, load_ticket(mlp_ticket[1]).trained_params)


def test_flipped_byte_inside_an_array_is_refused(mlp_ticket, tmp_path):
    path = mlp_ticket[1]
    name = "trained/layers.0.weight.npy"
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    raw = bytearray(Path(path).read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.compress_size // 2] ^= 0x10
    bad = tmp_path / "flipped.ticket"
    bad.write_bytes(bytes(raw))
    with pytest.raises(TicketFileError, match="trained/layers.0.weight") as exc:
        load_ticket(bad)
    assert exc.value.entries == ["trained/layers.0.weight"]
    assert exc.value.filename == str(bad) and str(bad) in str(exc.value)
    assert "altered or corrupted" in str(exc.value)


def test_changed_array_with_a_valid_zip_fails_its_checksum(mlp_ticket, tmp_path):
    def edit(entries):
        entries["init/layers.2.weight"] = entries["init/layers.2.weight"].copy()
        entries["init/layers.2.weight"][0] += 1.0

    bad = rewrite(mlp_ticket[1], tmp_path / "edited.ticket", edit_arrays=edit,
                  fix_checksums=False)
    with pytest.raises(TicketFileError, match=r"SHA-256 check failed for 1 entry: "
                                              r"init/layers.2.weight\. The file") as exc:
        load_ticket(bad)
    assert exc.value.entries == ["init/layers.2.weight"]


def test_edited_metadata_fails_its_checksum(mlp_ticket, tmp_path):
    def edit(meta):
        meta["layers"][0]["kept"] += 1

    bad = rewrite(mlp_ticket[1], tmp_path / "meta.ticket", edit_meta=edit, fix_checksums=False)
    with pytest.raises(TicketFileError, match="check failed for 1 entry: meta") as exc:
        load_ticket(bad)
    assert exc.value.entries == ["meta"]


def test_extra_and_missing_entries_are_named(mlp_ticket, tmp_path):
    def edit(entries):
        entries["extra"] = np.zeros(3)
        del entries["rewind/layers.0.bias"]

    bad = rewrite(mlp_ticket[1], tmp_path / "entries.ticket", edit_arrays=edit,
                  fix_checksums=False)
    with pytest.raises(TicketFileError, match=r"extra \(not covered by the checksums\), "
                                              r"rewind/layers.0.bias \(missing\)"):
        load_ticket(bad)


def test_future_format_version_is_refused(mlp_ticket, tmp_path):
    def newer(meta):
        meta["format_version"] = FORMAT_VERSION + 1

    bad = rewrite(mlp_ticket[1], tmp_path / "future.ticket", edit_meta=newer)
    with pytest.raises(TicketFileError, match=f"format version {FORMAT_VERSION + 1} is newer "
                                              ".*upgrade sklottery"):
        load_ticket(bad)

    def unknown(meta):
        meta["format_version"] = "1"

    bad = rewrite(mlp_ticket[1], tmp_path / "unknown.ticket", edit_meta=unknown)
    with pytest.raises(TicketFileError, match="unknown ticket format version '1'"):
        load_ticket(bad)


def test_not_a_ticket(mlp_ticket, tmp_path):
    with pytest.raises(FileNotFoundError):
        load_ticket(tmp_path / "missing.ticket")
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(mlp_ticket[0]))
    with pytest.raises(TicketFileError, match="not a zip archive.*looks like a pickle"):
        load_ticket(pkl)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.arange(3))
    with pytest.raises(TicketFileError, match="no 'meta' and 'integrity' entries"):
        load_ticket(other)
    truncated = tmp_path / "truncated.ticket"
    truncated.write_bytes(Path(mlp_ticket[1]).read_bytes()[:200])
    with pytest.raises(TicketFileError, match=str(truncated)):
        load_ticket(truncated)
    assert issubclass(TicketFileError, ValueError)


def test_other_versions_load_and_warn_only_where_it_matters(mlp_ticket, tmp_path):
    def older(meta):
        meta["versions"].update(sklottery="0.1.0", torch="1.13.0")
        meta["module"]["package_version"] = "0.1.0"

    path = rewrite(mlp_ticket[1], tmp_path / "old.ticket", edit_meta=older)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = load_ticket(path)
        assert_same_bits(t.trained_params, load_ticket(mlp_ticket[1]).trained_params)
    with pytest.warns(UserWarning, match="version 0.1.0 of its package.*code may differ"):
        t.module()
    with pytest.warns(UserWarning, match="sklottery 0.1.0.*torch 1.13.0.*bit for bit"):
        t.estimator()
    with warnings.catch_warnings():  # the same versions: silent
        warnings.simplefilter("error")
        load_ticket(mlp_ticket[1]).module()
        load_ticket(mlp_ticket[1]).estimator()


# ------------------------------------------------------------------ retrain
def test_retrain_from_ticket_keeps_its_masks(mlp_ticket, digits):
    X, y = digits
    t = load_ticket(mlp_ticket[1])
    est = t.estimator(n_rounds=0)
    assert isinstance(est, LotteryTicketClassifier) and est.hidden_layer_sizes == [32, 16]
    est.fit(X, y, initial_masks=t.masks, initial_params=t.init_params)
    assert_same_bits({k: m.cpu() for k, m in est.masks_.items()}, t.masks)
    assert_same_bits(est.init_params_, t.init_params)
    # by hand, as in Ticket's docstring, rewinding to θk
    by_hand = LotteryTicketClassifier(hidden_layer_sizes=(32, 16), n_rounds=0, max_epochs=1,
                                      random_state=1)
    by_hand.fit(X, y, initial_masks=t.masks, initial_params=t.rewind_params)
    assert_same_bits({k: m.cpu() for k, m in by_hand.masks_.items()}, t.masks)
    assert_same_bits(by_hand.init_params_, t.rewind_params)


def test_retrain_a_conv_ticket(digits, tmp_path):
    X, y = digits
    est = conv2(n_rounds=1).fit(X, y)
    t = load_ticket(est.save_ticket(tmp_path / "conv.ticket"))
    again = t.estimator(n_rounds=0).fit(X, y, initial_masks=t.masks,
                                        initial_params=t.init_params)
    assert_same_bits({k: m.cpu() for k, m in again.masks_.items()}, t.masks)


# ---------------------------------------------------------------- data hash
def test_data_hash_is_stable_and_changes_with_the_data(digits):
    X, y = digits
    a = mlp(n_rounds=0).fit(X, y)
    b = mlp(n_rounds=0, random_state=3).fit(X.copy(), y.copy())
    assert a.data_sha256_ == b.data_sha256_ == data_sha256(X, y)
    assert len(a.data_sha256_) == 64
    X2 = X.copy()
    X2[5, 7] += 0.5
    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 10
    hashes = {data_sha256(X, y), data_sha256(X2, y), data_sha256(X, y2),
              data_sha256(X.astype(np.float64), y), data_sha256(X[::-1], y[::-1]),
              data_sha256(X[:-1], y[:-1])}
    assert len(hashes) == 6
    assert mlp(n_rounds=0).fit(X2, y).data_sha256_ == data_sha256(X2, y)
    # image arrays hash as the flat rows the estimator validates
    assert data_sha256(X.reshape(-1, 1, 8, 8), y) == data_sha256(X, y)
    labels = np.array(["a", "b"] * 150, dtype=object)
    assert mlp(n_rounds=0).fit(X, labels).data_sha256_ == data_sha256(X, labels)


def test_warm_start_on_other_data_has_no_single_hash(digits):
    X, y = digits
    est = mlp(n_rounds=1, warm_start=True).fit(X, y)
    first = est.data_sha256_
    est.set_params(n_rounds=2).fit(X, y)
    assert est.data_sha256_ == first
    est.set_params(n_rounds=3).fit(X[:-10], y[:-10])
    assert est.data_sha256_ is None


# ----------------------------------------------------------------------- CLI
def test_cli_export_and_inspect(mlp_ticket, tmp_path, capsys):
    est = mlp_ticket[0]
    model = tmp_path / "model.pkl"
    joblib.dump(est, model)
    out = tmp_path / "out.ticket"
    assert main(["ticket", "export", str(model), str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert_same_bits(load_ticket(out).trained_params, est.net_.module_.state_dict())
    assert main(["ticket", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    for part in ("sklottery-ticket version 1", f"torch {torch.__version__}",
                 "sklottery.modules.MLP", "layers.0.weight  32 x 64", "output",
                 "thetak at iteration 2", "pruning_rate 0.6", "checksums  OK",
                 f"sha256 {est.data_sha256_}", "round   3"):
        assert part in text, part
    density = 100 * float(est.masks_["layers.0.weight"].float().mean())
    assert f"{density:.2f} %" in text
    lean = tmp_path / "lean.ticket"
    assert main(["ticket", "export", "--no-trained", str(model), str(lean)]) == 0
    assert load_ticket(lean).trained_params is None


def test_cli_errors_name_the_file_and_the_problem(mlp_ticket, tmp_path):
    def fails(argv, *parts):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        message = exc.value.code
        assert isinstance(message, str)  # printed to stderr, exit status 1
        for part in parts:
            assert part in message, (part, message)

    missing = str(tmp_path / "missing.pkl")
    fails(["ticket", "export", missing, str(tmp_path / "o.ticket")], missing, "no such file")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle at all")
    fails(["ticket", "export", str(junk), str(tmp_path / "o.ticket")], str(junk),
          "cannot be loaded with joblib/pickle")
    other = tmp_path / "scaler.pkl"
    joblib.dump(StandardScaler(), other)
    fails(["ticket", "export", str(other), str(tmp_path / "o.ticket")], str(other),
          "needs a fitted LotteryTicketClassifier")
    unfitted = tmp_path / "unfitted.pkl"
    joblib.dump(mlp(), unfitted)
    fails(["ticket", "export", str(unfitted), str(tmp_path / "o.ticket")], str(unfitted),
          "not fitted")
    fails(["ticket", "inspect", str(tmp_path / "none.ticket")], "none.ticket", "no such file")
    fails(["ticket", "inspect", str(junk)], str(junk), "not a ticket file")

    def edit(meta):
        meta["schedule"]["n_rounds"] = 0

    bad = rewrite(mlp_ticket[1], tmp_path / "bad.ticket", edit_meta=edit, fix_checksums=False)
    fails(["ticket", "inspect", bad], bad, "check failed for 1 entry: meta")
