"""A pickled estimator is checked on load: altered bytes are an error, never a model.

The stored state carries a SHA-256 checksum of every entry
(:func:`sklottery.persistence.open_packed_state`); these tests alter single bytes
of a pickle file where the weights and the mask bits are stored and expect
:class:`~sklottery.PickleIntegrityError` naming the entry and the file.
"""

import copy
import io
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import sklottery
from sklottery import LotteryTicketClassifier, PickleIntegrityError, persistence
from sklottery.exceptions import PickleIntegrityError as FromExceptions

LAYER = "layers.0.weight"


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:400], y[:400]


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    return LotteryTicketClassifier(
        hidden_layer_sizes=(48, 24), max_epochs=2, batch_size=50, n_rounds=2,
        pruning_rate=0.6, learning_rate_init=5e-3, record_history=True, random_state=0,
    ).fit(X, y)


def survivors_bytes(est, name=LAYER):
    """The bytes a pickle stores for a pruned layer: its surviving weights."""
    weight = est.net_.module_.state_dict()[name]
    return weight[est.masks_[name]].numpy().tobytes()


def mask_bytes(est, name=LAYER):
    """The bytes a pickle stores for a mask: its bits, packed."""
    return np.packbits(est.masks_[name].numpy().ravel()).tobytes()


def flip_one_byte(path, needle):
    """XOR one byte in the middle of the only occurrence of ``needle`` in the file."""
    data = bytearray(path.read_bytes())
    assert data.count(needle) == 1, "the array's bytes must be stored once, contiguously"
    at = data.find(needle) + len(needle) // 2
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def save(est, path, how):
    if how == "pickle":
        with open(path, "wb") as f:
            pickle.dump(est, f)
    else:
        joblib.dump(est, path)


def load(path, how):
    if how == "pickle":
        with open(path, "rb") as f:
            return pickle.load(f)
    return joblib.load(path)


def test_the_error_is_a_value_error_exported_at_the_top():
    assert PickleIntegrityError is FromExceptions is persistence.PickleIntegrityError
    assert issubclass(PickleIntegrityError, ValueError)
    assert "PickleIntegrityError" in sklottery.__all__


@pytest.mark.parametrize("how", ["pickle", "joblib"])
@pytest.mark.parametrize("what, needle, entry", [
    ("weights", survivors_bytes, f"module['{LAYER}'] (the network's weights)"),
    ("mask", mask_bytes, f"masks['{LAYER}'] (the pruning masks (packed bits))"),
])
def test_one_flipped_byte_is_an_error_naming_the_entry_and_the_file(fitted, digits, tmp_path,
                                                                     how, what, needle, entry):
    X, _ = digits
    assert fitted.masks_[LAYER].float().mean() < 0.5  # a pruned layer: stored as survivors
    path = tmp_path / f"ticket.{how}"
    save(fitted, path, how)
    np.testing.assert_array_equal(load(path, how).predict_proba(X), fitted.predict_proba(X))
    flip_one_byte(path, needle(fitted))
    with pytest.raises(PickleIntegrityError) as info:
        load(path, how)
    message = str(info.value)
    assert entry in message
    assert str(path) in message
    assert "altered or corrupted" in message and "SHA-256" in message
    assert info.value.entries == [entry.split(" ")[0]]
    assert info.value.filename == str(path)


def test_bytes_without_a_file_still_name_the_entry(fitted):
    data = bytearray(pickle.dumps(fitted))
    needle = survivors_bytes(fitted)
    data[data.find(needle) + 3] ^= 0x80
    with pytest.raises(PickleIntegrityError, match=r"module\['layers.0.weight'\]") as info:
        pickle.loads(bytes(data))
    assert info.value.filename is None and " in '" not in str(info.value)


def _tamper_seed(state):
    kind, seed, checksum, tags = state[persistence._PACKED]["init"]
    state[persistence._PACKED]["init"] = (kind, seed + 1, checksum, tags)


def _tamper_bias(state):  # a tensor stored in full
    state[persistence._PACKED]["module"]["layers.0.bias"]["data"][0] += 1.0


def _tamper_rounds(state):
    state["rounds_"][0]["train_loss"] += 1e-6


def _tamper_history(state):
    state["history_"][0]["final"][LAYER][0, 0] += 1.0


def _tamper_checkpoint_rng(state):
    state["_checkpoint"].rng["generator"][-1] ^= 1


@pytest.mark.parametrize("tamper, entry", [
    (_tamper_seed, "init"),
    (_tamper_bias, "module['layers.0.bias']"),
    (_tamper_rounds, "attribute rounds_"),
    (_tamper_history, "attribute history_"),
    (_tamper_checkpoint_rng, "attribute _checkpoint"),
])
def test_every_stored_entry_is_covered(fitted, tamper, entry):
    state = copy.deepcopy(fitted.__getstate__())
    tamper(state)
    loaded = object.__new__(type(fitted))
    with pytest.raises(PickleIntegrityError, match="altered or corrupted") as info:
        loaded.__setstate__(state)
    assert info.value.entries == [entry]
    assert not vars(loaded)  # nothing was set


def test_deepcopy_and_round_trips_still_pass_the_check(fitted, digits):
    X, _ = digits
    for copied in (copy.deepcopy(fitted), pickle.loads(pickle.dumps(fitted))):
        np.testing.assert_array_equal(copied.predict_proba(X), fitted.predict_proba(X))
        # a copy of a copy carries its own, equal, record
        again = pickle.loads(pickle.dumps(copied))
        np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))


def _format_1(state):
    """The state as sklottery pickled it before the integrity record (format 1)."""
    state = copy.deepcopy(state)
    packed = state[persistence._PACKED]
    del packed["integrity"]
    packed["format"] = 1
    return state


def test_a_format_1_pickle_loads_unverified_with_a_warning(fitted, digits):
    X, _ = digits
    old = pickle.dumps(_format_1(fitted.__getstate__()))
    loaded = object.__new__(type(fitted))
    with pytest.warns(UserWarning, match="without integrity checksums: it is loaded unverified"):
        loaded.__setstate__(pickle.loads(old))
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    # pickled again, it gets a record
    assert "integrity" in loaded.__getstate__()[persistence._PACKED]


def test_a_format_changed_to_1_with_a_record_is_an_error(fitted):
    state = copy.deepcopy(fitted.__getstate__())
    state[persistence._PACKED]["format"] = 1
    with pytest.raises(PickleIntegrityError, match=r"format \(the packing format\)"):
        object.__new__(type(fitted)).__setstate__(state)


def test_a_missing_record_is_an_error(fitted):
    state = copy.deepcopy(fitted.__getstate__())
    del state[persistence._PACKED]["integrity"]
    with pytest.raises(PickleIntegrityError, match="missing or unreadable"):
        object.__new__(type(fitted)).__setstate__(state)


def test_unfitted_estimators_carry_no_record():
    est = LotteryTicketClassifier(max_epochs=1)
    assert persistence._PACKED not in est.__getstate__()
    assert pickle.loads(pickle.dumps(est)).get_params() == est.get_params()


class _Hostile(io.RawIOBase):
    """A readable file object whose every attribute access fails."""

    def readable(self):
        raise RuntimeError("no")

    @property
    def name(self):
        raise RuntimeError("no")


def test_looking_for_the_file_never_fails():
    hostile = _Hostile()  # noqa: F841 - found in this frame's locals
    assert persistence._loading_file() is None


def test_two_open_files_in_the_loading_frame_name_none(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x")
    b.write_bytes(b"y")
    with open(a, "rb") as fa, open(b, "rb") as fb:  # noqa: F841
        assert persistence._loading_file() is None
    with open(a, "rb") as fa:  # noqa: F841
        assert persistence._loading_file() == str(a)


def test_weights_round_trip_bit_for_bit(fitted):
    loaded = pickle.loads(pickle.dumps(fitted))
    for k, v in fitted.net_.module_.state_dict().items():
        assert torch.equal(loaded.net_.module_.state_dict()[k], v), k


def test_pickles_from_before_the_training_package_load(monkeypatch):
    """Estimators pickled when the skorch trainer's classes lived in
    ``sklottery._training`` (their module path is in the file) load, predict
    the same and continue with ``warm_start``."""
    import sklottery.training.skorch as trainer_module

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    est = LotteryTicketClassifier(hidden_layer_sizes=(16,), max_epochs=1, n_rounds=1,
                                  random_state=0).fit(X, y)
    for name in ("LotteryNet", "MaskCallback", "EvalGrid", "WarmupScheduler",
                 "TensorBatchIterator", "ValidAccuracy"):
        monkeypatch.setattr(getattr(trainer_module, name), "__module__", "sklottery._training")
    data = pickle.dumps(est)
    monkeypatch.undo()
    assert b"sklottery._training" in data and b"sklottery.training.skorch" not in data
    loaded = pickle.loads(data)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    loaded.set_params(warm_start=True, n_rounds=2).fit(X, y)
    assert loaded.n_rounds_ == 2
