"""Tests of sklottery.datasets.

Everything runs on tiny files written to ``tmp_path``; no test touches the
network (``_urlopen`` is replaced by a fake in every test). The one test on
real data uses the Fashion-MNIST files of the Debian package
``dataset-fashion-mnist`` and is skipped when they are absent.
"""

import gzip
import hashlib
import io
import os
import pickle
import random
import sys
import tarfile

import numpy as np
import pytest

from sklottery import datasets
from sklottery.datasets import (
    fetch_cifar10,
    fetch_fashion_mnist,
    fetch_mnist,
    get_data_home,
    load_mnist1d,
)

REAL_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
# read before the autouse fixture empties it in every test
DEFAULT_FASHION_SYSTEM_DIRS = datasets.FASHION_MNIST_SYSTEM_DIRS

IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}

# (loader, per-dataset subfolder, md5 dict attribute, url attribute)
IDX_LOADERS = [
    pytest.param(fetch_mnist, "mnist", "MNIST_MD5", "MNIST_URL", id="mnist"),
    pytest.param(
        fetch_fashion_mnist,
        "fashion-mnist",
        "FASHION_MNIST_MD5",
        "FASHION_MNIST_URL",
        id="fashion",
    ),
]


# ---------------------------------------------------------------------------
# Helpers and fixtures.
# ---------------------------------------------------------------------------


def idx_bytes(array, magic=None):
    """Serialise a uint8 array in IDX format (big-endian header)."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.tobytes()


def write_idx(path, array, magic=None, compress=True):
    """Write ``array`` as an IDX file, gzip'd if ``compress``."""
    payload = idx_bytes(array, magic)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(gzip.compress(payload) if compress else payload)
    return path


def make_idx_dataset(folder, n_train=6, n_test=4, seed=0, compress=True):
    """Write the four IDX files of a tiny 28x28 dataset; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train": (
            rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, size=n_train, dtype=np.uint8),
        ),
        "test": (
            rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, size=n_test, dtype=np.uint8),
        ),
    }
    # make sure 0 and 255 occur, so that scaling to [0, 1] is checked
    arrays["train"][0][0, 0, :2] = [0, 255]
    for split, (images, labels) in arrays.items():
        for kind, array in (("images", images), ("labels", labels)):
            name = IDX_FILES[(split, kind)]
            if not compress:
                name = name[: -len(".gz")]
            write_idx(os.path.join(folder, name), array, compress=compress)
    return arrays


def cifar_batch_pickle(data, labels, legacy_numpy_names=False):
    """Pickle a CIFAR-like batch with bytes keys, as the Python-2 originals."""
    raw = pickle.dumps(
        {b"batch_label": b"test", b"labels": list(map(int, labels)),
         b"data": data, b"filenames": [b"x.png"] * len(labels)},
        protocol=2,
    )
    if legacy_numpy_names:  # the originals were pickled by numpy 1.x
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        assert b"numpy.core.multiarray" in raw
    return raw


def make_cifar_arrays(n_per_batch=3, seed=0):
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = (
            rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8),
            rng.integers(0, 10, size=n_per_batch),
        )
    return batches


CIFAR_META_NAMES = [f"class{i}" for i in range(10)]


def make_cifar_tarball(path, batches, meta=True, legacy_numpy_names=False,
                       members=None):
    """Write a tiny cifar-10-python.tar.gz; return its bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        items = {
            name: cifar_batch_pickle(d, y, legacy_numpy_names)
            for name, (d, y) in batches.items()
        }
        if meta:
            items["batches.meta"] = pickle.dumps(
                {b"label_names": [n.encode() for n in CIFAR_META_NAMES],
                 b"num_vis": 3072},
                protocol=2,
            )
        for name, raw in items.items():
            if members is not None and name not in members:
                continue
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    content = buf.getvalue()
    if path is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
    return content


class FakeResponse(io.BytesIO):
    """urlopen-like response serving local bytes, optionally failing."""

    def __init__(self, content, fail_after=None, exc=None):
        super().__init__(content)
        self.fail_after = fail_after
        self.exc = exc
        self.served = 0

    def read(self, size=-1):
        if self.fail_after is not None:
            left = self.fail_after - self.served
            if left <= 0:
                raise self.exc
            size = left if size < 0 else min(size, left)
        chunk = super().read(size)
        self.served += len(chunk)
        return chunk


class FakeServer:
    """Replacement for datasets._urlopen serving {url: bytes}."""

    def __init__(self, files, fail_after=None, exc=None):
        self.files = files
        self.fail_after = fail_after
        self.exc = exc
        self.requested = []

    def __call__(self, url, timeout=60):
        self.requested.append(url)
        if url not in self.files:
            raise AssertionError(f"unexpected download of {url}")
        return FakeResponse(self.files[url], self.fail_after, self.exc)


def md5(content):
    return hashlib.md5(content).hexdigest()


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No network, no system dirs, no SKLOTTERY_DATA, HOME in tmp_path."""

    def no_network(url, timeout=60):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(datasets, "_urlopen", no_network)
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", ())
    monkeypatch.setattr(datasets, "MNIST_SYSTEM_DIRS", ())
    monkeypatch.setattr(datasets, "CIFAR10_SYSTEM_DIRS", ())
    monkeypatch.delenv("SKLOTTERY_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "userhome"))


def listdir_recursive(folder):
    return sorted(
        os.path.relpath(os.path.join(root, f), folder)
        for root, _, files in os.walk(folder)
        for f in files
    )


# ---------------------------------------------------------------------------
# get_data_home
# ---------------------------------------------------------------------------


def test_get_data_home_precedence(monkeypatch, tmp_path):
    home = str(tmp_path / "userhome")
    assert get_data_home() == os.path.join(home, "sklottery_data")
    monkeypatch.setenv("SKLOTTERY_DATA", "")  # empty means unset
    assert get_data_home() == os.path.join(home, "sklottery_data")
    monkeypatch.setenv("SKLOTTERY_DATA", str(tmp_path / "env"))
    assert get_data_home() == str(tmp_path / "env")
    assert get_data_home(tmp_path / "arg") == str(tmp_path / "arg")
    assert get_data_home("~/x") == os.path.join(home, "x")
    assert not os.path.exists(tmp_path / "env")  # lookup creates nothing


# ---------------------------------------------------------------------------
# IDX loaders
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("loader, subdir, md5_attr, url_attr", IDX_LOADERS)
def test_idx_loader_bunch(tmp_path, loader, subdir, md5_attr, url_attr):
    arrays = make_idx_dataset(tmp_path / "home" / subdir)
    bunch = loader(data_home=tmp_path / "home", download_if_missing=False)
    images, labels = arrays["train"]

    assert bunch.data.shape == (6, 784) and bunch.data.dtype == np.float32
    assert bunch.data.flags.c_contiguous
    np.testing.assert_array_equal(
        bunch.data, images.reshape(6, -1).astype(np.float32) / 255
    )
    assert bunch.data.min() == 0.0 and bunch.data.max() == 1.0
    assert bunch.images.shape == (6, 1, 28, 28)
    assert bunch.images.dtype == np.float32
    assert np.shares_memory(bunch.images, bunch.data)
    np.testing.assert_array_equal(bunch.images[:, 0] * 255, images)
    assert bunch.target.dtype == np.int64
    np.testing.assert_array_equal(bunch.target, labels)
    assert bunch.frame is None
    assert len(bunch.target_names) == 10
    assert len(bunch.feature_names) == 784
    assert bunch.feature_names[29] == "pixel_1_1"
    assert len(bunch.DESCR) > 300 and "Source" in bunch.DESCR
    assert [os.path.basename(f) for f in bunch.filenames] == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
    ]


def test_target_names_and_descr():
    fashion = datasets._FASHION_MNIST_CLASSES
    assert fashion[0] == "T-shirt/top" and fashion[9] == "Ankle boot"
    assert "MIT" in datasets._FASHION_MNIST_DESCR
    assert "1708.07747" in datasets._FASHION_MNIST_DESCR
    assert "LeCun" in datasets._MNIST_DESCR
    assert "Krizhevsky" in datasets._CIFAR10_DESCR
    assert "2011.14439" in datasets._MNIST1D_DESCR


@pytest.mark.parametrize("loader, subdir, md5_attr, url_attr", IDX_LOADERS)
def test_idx_subsets(tmp_path, loader, subdir, md5_attr, url_attr):
    arrays = make_idx_dataset(tmp_path / subdir, n_train=5, n_test=3)
    test = loader(data_home=tmp_path, subset="test",
                  download_if_missing=False)
    np.testing.assert_array_equal(test.images[:, 0] * 255, arrays["test"][0])
    np.testing.assert_array_equal(test.target, arrays["test"][1])
    both = loader(data_home=tmp_path, subset="all", download_if_missing=False)
    assert both.data.shape == (8, 784)
    assert np.shares_memory(both.images, both.data)
    np.testing.assert_array_equal(
        both.target, np.concatenate([arrays["train"][1], arrays["test"][1]])
    )
    np.testing.assert_array_equal(both.data[5:], test.data)
    with pytest.raises(ValueError, match="subset"):
        loader(data_home=tmp_path, subset="validation")


def test_only_needed_split_is_read(tmp_path):
    make_idx_dataset(tmp_path)
    os.remove(tmp_path / "t10k-images-idx3-ubyte.gz")
    assert fetch_mnist(data_home=tmp_path, download_if_missing=False
                       ).data.shape == (6, 784)
    with pytest.raises(OSError, match="t10k-images-idx3-ubyte.gz"):
        fetch_mnist(data_home=tmp_path, subset="all",
                    download_if_missing=False)


def test_return_X_y_and_as_frame(tmp_path):
    pd = pytest.importorskip("pandas")
    arrays = make_idx_dataset(tmp_path)
    X, y = fetch_mnist(data_home=tmp_path, return_X_y=True,
                       download_if_missing=False)
    assert isinstance(X, np.ndarray) and X.shape == (6, 784)
    np.testing.assert_array_equal(y, arrays["train"][1])

    bunch = fetch_mnist(data_home=tmp_path, as_frame=True,
                        download_if_missing=False)
    assert isinstance(bunch.data, pd.DataFrame)
    assert list(bunch.data.columns) == bunch.feature_names
    assert (bunch.data.dtypes == np.float32).all()
    assert isinstance(bunch.target, pd.Series) and bunch.target.name == "class"
    assert bunch.target.dtype == np.int64
    assert bunch.frame.shape == (6, 785)
    assert list(bunch.frame.columns[-1:]) == ["class"]
    np.testing.assert_array_equal(bunch.data.to_numpy(), X)
    assert bunch.images.shape == (6, 1, 28, 28)

    Xf, yf = fetch_mnist(data_home=tmp_path, as_frame=True, return_X_y=True,
                         download_if_missing=False)
    assert isinstance(Xf, pd.DataFrame) and isinstance(yf, pd.Series)
    np.testing.assert_array_equal(yf.to_numpy(), y)


def test_uncompressed_idx_files_are_accepted(tmp_path):
    arrays = make_idx_dataset(tmp_path, compress=False)
    bunch = fetch_mnist(data_home=tmp_path, download_if_missing=False)
    np.testing.assert_array_equal(bunch.target, arrays["train"][1])
    assert bunch.filenames[0].endswith("train-images-idx3-ubyte")


def _labels_seen(**kwargs):
    return fetch_fashion_mnist(download_if_missing=False, **kwargs).target


def test_search_order(monkeypatch, tmp_path):
    # each location gets a dataset whose labels differ (seed), so we can tell
    # which one was read
    system = tmp_path / "system"
    want = {
        name: make_idx_dataset(folder, seed=seed)["train"][1]
        for seed, (name, folder) in enumerate(
            [
                ("arg_sub", tmp_path / "arg" / "fashion-mnist"),
                ("arg_flat", tmp_path / "arg"),
                ("env_sub", tmp_path / "env" / "fashion-mnist"),
                ("system", system),
            ]
        )
    }
    assert len({tuple(v) for v in want.values()}) == 4
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS", (str(system),))
    monkeypatch.setenv("SKLOTTERY_DATA", str(tmp_path / "env"))

    # data_home beats the environment variable; its subfolder beats itself
    np.testing.assert_array_equal(
        _labels_seen(data_home=tmp_path / "arg"), want["arg_sub"]
    )
    for name in IDX_FILES.values():
        os.remove(tmp_path / "arg" / "fashion-mnist" / name)
    np.testing.assert_array_equal(
        _labels_seen(data_home=tmp_path / "arg"), want["arg_flat"]
    )
    # the environment variable is used when data_home is None
    np.testing.assert_array_equal(_labels_seen(), want["env_sub"])
    # system folders come after the data home
    np.testing.assert_array_equal(
        _labels_seen(data_home=tmp_path / "empty"), want["system"]
    )
    # ~/sklottery_data is the default when neither is given
    monkeypatch.delenv("SKLOTTERY_DATA")
    default = make_idx_dataset(
        tmp_path / "userhome" / "sklottery_data" / "fashion-mnist", seed=9
    )
    np.testing.assert_array_equal(_labels_seen(), default["train"][1])


def test_missing_file_without_download(tmp_path):
    with pytest.raises(OSError) as info:
        fetch_mnist(data_home=tmp_path, download_if_missing=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert os.path.join(str(tmp_path), "mnist") in message
    assert "download_if_missing=False" in message
    assert os.listdir(tmp_path) == []


def test_fashion_system_dir_is_searched_by_default():
    assert "/usr/share/datasets/fashion-mnist" in DEFAULT_FASHION_SYSTEM_DIRS


# --- corrupted files --------------------------------------------------------


def _break(tmp_path, name, content):
    make_idx_dataset(tmp_path)
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_corrupted_gzip_names_file(tmp_path):
    path = _break(tmp_path, "train-images-idx3-ubyte.gz",
                  b"this is not gzip data at all")
    with pytest.raises(ValueError, match="decompress") as info:
        fetch_mnist(data_home=tmp_path, download_if_missing=False)
    assert path in str(info.value)


def test_truncated_gzip_names_file(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28), np.uint8)
    good = gzip.compress(idx_bytes(images))
    path = _break(tmp_path, "train-images-idx3-ubyte.gz",
                  good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupted or truncated") as info:
        fetch_mnist(data_home=tmp_path, download_if_missing=False)
    assert path in str(info.value)


def test_gzip_crc_error_names_file(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28), np.uint8)
    good = bytearray(gzip.compress(idx_bytes(images)))
    good[-8] ^= 0xFF  # corrupt the CRC32 in the gzip trailer
    path = _break(tmp_path, "train-images-idx3-ubyte.gz", bytes(good))
    with pytest.raises(ValueError) as info:
        fetch_mnist(data_home=tmp_path, download_if_missing=False)
    assert path in str(info.value)


def test_truncated_payload_names_file(tmp_path):
    images = np.zeros((6, 28, 28), np.uint8)
    payload = idx_bytes(images)[:-100]  # valid gzip, short IDX payload
    path = _break(tmp_path, "train-images-idx3-ubyte.gz",
                  gzip.compress(payload))
    with pytest.raises(ValueError, match="is truncated") as info:
        fetch_mnist(data_home=tmp_path, download_if_missing=False)
    assert path in str(info.value)
    assert "(6, 28, 28)" in str(info.value)


def test_trailing_bytes_name_file(tmp_path):
    payload = idx_bytes(np.zeros(6, np.uint8)) + b"\0\0"
    path = _break(tmp_path, "train-labels-idx1-ubyte.gz",
                  gzip.compress(payload))
    with pytest.raises(ValueError, match="trailing bytes") as info:
        fetch_mnist(data_home=tmp_path, download_if_missing=False)
    assert path in str(info.value)


def test_truncated_header_names_file(tmp_path):
    payload = idx_bytes(np.zeros((6, 28, 28), np.uint8))[:10]
    path = _break(tmp_path, "train-images-idx3-ubyte.gz",
                  gzip.compress(payload))
    with pytest.raises(ValueError, match="header") as info:
        fetch_mnist(data_home=tmp_path, download_if_missing=False)
    assert path in str(info.value)


@pytest.mark.parametrize("magic", [0x00000801, 0x00000903, 0x12345678])
def test_wrong_magic_names_file(tmp_path, magic):
    payload = idx_bytes(np.zeros((6, 28, 28), np.uint8), magic=magic)
    path = _break(tmp_path, "train-images-idx3-ubyte.gz",
                  gzip.compress(payload))
    with pytest.raises(ValueError, match="magic number") as info:
        fetch_mnist(data_home=tmp_path, download_if_missing=False)
    assert path in str(info.value)
    assert f"0x{magic:08X}" in str(info.value)


def test_image_label_count_mismatch(tmp_path):
    make_idx_dataset(tmp_path)
    write_idx(str(tmp_path / "train-labels-idx1-ubyte.gz"),
              np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="6 images but .* 5 labels"):
        fetch_mnist(data_home=tmp_path, download_if_missing=False)


def test_out_of_range_label(tmp_path):
    make_idx_dataset(tmp_path)
    path = write_idx(str(tmp_path / "train-labels-idx1-ubyte.gz"),
                     np.full(6, 10, np.uint8))
    with pytest.raises(ValueError, match="label 10") as info:
        fetch_mnist(data_home=tmp_path, download_if_missing=False)
    assert path in str(info.value)


# --- downloads ------------------------------------------------------------


def _serve_idx(monkeypatch, tmp_path, md5_attr, url_attr, **server_kwargs):
    """Make fake official files, register their md5s, install a server."""
    src = tmp_path / "src"
    arrays = make_idx_dataset(src)
    base = getattr(datasets, url_attr)
    files = {}
    for name in IDX_FILES.values():
        content = (src / name).read_bytes()
        files[base + name] = content
        monkeypatch.setitem(getattr(datasets, md5_attr), name, md5(content))
    server = FakeServer(files, **server_kwargs)
    monkeypatch.setattr(datasets, "_urlopen", server)
    return arrays, server, files


@pytest.mark.parametrize("loader, subdir, md5_attr, url_attr", IDX_LOADERS)
def test_download_installs_verified_files(monkeypatch, tmp_path, loader,
                                          subdir, md5_attr, url_attr):
    arrays, server, _ = _serve_idx(monkeypatch, tmp_path, md5_attr, url_attr)
    home = tmp_path / "home"
    bunch = loader(data_home=home)
    np.testing.assert_array_equal(bunch.target, arrays["train"][1])
    base = getattr(datasets, url_attr)
    assert server.requested == [base + "train-images-idx3-ubyte.gz",
                                base + "train-labels-idx1-ubyte.gz"]
    assert listdir_recursive(home) == [
        os.path.join(subdir, "train-images-idx3-ubyte.gz"),
        os.path.join(subdir, "train-labels-idx1-ubyte.gz"),
    ]
    # a second call reads the installed files and downloads nothing
    again = loader(data_home=home, download_if_missing=False)
    np.testing.assert_array_equal(again.data, bunch.data)
    loader(data_home=home)
    assert len(server.requested) == 2


def test_download_goes_to_env_data_home(monkeypatch, tmp_path):
    _serve_idx(monkeypatch, tmp_path, "MNIST_MD5", "MNIST_URL")
    monkeypatch.setenv("SKLOTTERY_DATA", str(tmp_path / "env"))
    fetch_mnist(subset="test")
    assert listdir_recursive(tmp_path / "env") == [
        os.path.join("mnist", "t10k-images-idx3-ubyte.gz"),
        os.path.join("mnist", "t10k-labels-idx1-ubyte.gz"),
    ]


def test_download_checksum_mismatch_leaves_nothing(monkeypatch, tmp_path):
    _, server, files = _serve_idx(monkeypatch, tmp_path, "MNIST_MD5",
                                  "MNIST_URL")
    monkeypatch.setitem(datasets.MNIST_MD5, "train-images-idx3-ubyte.gz",
                        "0" * 32)
    home = tmp_path / "home"
    with pytest.raises(OSError, match="MD5") as info:
        fetch_mnist(data_home=home)
    assert "0" * 32 in str(info.value)
    assert md5(files[datasets.MNIST_URL + "train-images-idx3-ubyte.gz"]) in (
        str(info.value))
    assert listdir_recursive(home) == []  # no final file, no temp file
    with pytest.raises(OSError, match="not found"):
        fetch_mnist(data_home=home, download_if_missing=False)


@pytest.mark.parametrize("exc", [ConnectionResetError("peer reset"),
                                 KeyboardInterrupt()])
def test_interrupted_download_leaves_nothing(monkeypatch, tmp_path, exc):
    _serve_idx(monkeypatch, tmp_path, "FASHION_MNIST_MD5",
               "FASHION_MNIST_URL", fail_after=100, exc=exc)
    home = tmp_path / "home"
    expected = OSError if isinstance(exc, Exception) else KeyboardInterrupt
    with pytest.raises(expected) as info:
        fetch_fashion_mnist(data_home=home)
    if expected is OSError:
        assert "train-images-idx3-ubyte.gz" in str(info.value)
        assert isinstance(info.value.__cause__, ConnectionResetError)
    assert listdir_recursive(home) == []


def test_download_refused_by_server_leaves_nothing(monkeypatch, tmp_path):
    def refuse(url, timeout=60):
        raise OSError("connection refused")

    monkeypatch.setattr(datasets, "_urlopen", refuse)
    with pytest.raises(OSError, match="connection refused"):
        fetch_mnist(data_home=tmp_path / "home")
    assert listdir_recursive(tmp_path / "home") == []


def test_download_helper_atomic_replace(monkeypatch, tmp_path):
    content = b"x" * (3 << 20)  # several chunks
    monkeypatch.setattr(datasets, "_urlopen",
                        FakeServer({"http://h/f": content}))
    dest = tmp_path / "d" / "f"
    result = datasets._download("http://h/f", str(dest), md5(content))
    assert result == str(dest)
    assert dest.read_bytes() == content
    # a failing re-download does not damage the existing file
    with pytest.raises(OSError):
        datasets._download("http://h/f", str(dest), "f" * 32)
    assert dest.read_bytes() == content
    assert os.listdir(tmp_path / "d") == ["f"]


def test_canonical_sources_and_checksums():
    assert datasets.MNIST_URL == "http://yann.lecun.com/exdb/mnist/"
    assert datasets.FASHION_MNIST_URL == (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")
    assert datasets.CIFAR10_URL == (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
    for table in (datasets.MNIST_MD5, datasets.FASHION_MNIST_MD5):
        assert sorted(table) == sorted(IDX_FILES.values())
    checksums = [*datasets.MNIST_MD5.values(),
                 *datasets.FASHION_MNIST_MD5.values(), datasets.CIFAR10_MD5]
    assert len(set(checksums)) == 9
    for value in checksums:
        assert len(value) == 32 and int(value, 16) >= 0
    # the official Fashion-MNIST README values
    assert datasets.FASHION_MNIST_MD5["train-images-idx3-ubyte.gz"] == (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d")
    assert datasets.CIFAR10_MD5 == "c58f30108f718f92721af3b95e74349a"


# ---------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------


def _cifar_expected(batches, names):
    data = np.concatenate([batches[n][0] for n in names])
    labels = np.concatenate([batches[n][1] for n in names])
    return data, labels


TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


@pytest.mark.parametrize("legacy", [False, True], ids=["numpy2", "numpy1"])
def test_cifar10_from_archive(tmp_path, legacy):
    batches = make_cifar_arrays()
    archive = tmp_path / "cifar-10" / "cifar-10-python.tar.gz"
    make_cifar_tarball(archive, batches, legacy_numpy_names=legacy)
    bunch = fetch_cifar10(data_home=tmp_path, download_if_missing=False)
    data, labels = _cifar_expected(batches, TRAIN_BATCHES)

    assert bunch.data.shape == (15, 3072) and bunch.data.dtype == np.float32
    np.testing.assert_array_equal(bunch.data, data.astype(np.float32) / 255)
    assert bunch.images.shape == (15, 3, 32, 32)
    assert np.shares_memory(bunch.images, bunch.data)
    # channel-first: the first 1024 values of a row are the red plane
    np.testing.assert_array_equal(bunch.images[4, 0] * 255,
                                  data[4, :1024].reshape(32, 32))
    np.testing.assert_array_equal(bunch.images[4, 2] * 255,
                                  data[4, 2048:].reshape(32, 32))
    assert bunch.target.dtype == np.int64
    np.testing.assert_array_equal(bunch.target, labels)
    assert list(bunch.target_names) == CIFAR_META_NAMES  # from batches.meta
    assert bunch.feature_names[0] == "red_0_0"
    assert bunch.feature_names[1024] == "green_0_0"
    assert "Krizhevsky" in bunch.DESCR
    assert bunch.filenames[0] == (
        f"{archive}:cifar-10-batches-py/data_batch_1")


def test_cifar10_subsets_and_frame(tmp_path):
    pd = pytest.importorskip("pandas")
    batches = make_cifar_arrays(n_per_batch=2)
    make_cifar_tarball(tmp_path / "cifar-10-python.tar.gz", batches,
                       meta=False)
    X, y = fetch_cifar10(data_home=tmp_path, subset="test", return_X_y=True,
                         download_if_missing=False)
    data, labels = _cifar_expected(batches, ["test_batch"])
    np.testing.assert_array_equal(X * 255, data)
    np.testing.assert_array_equal(y, labels)

    both = fetch_cifar10(data_home=tmp_path, subset="all", as_frame=True,
                         download_if_missing=False)
    assert isinstance(both.data, pd.DataFrame)
    assert both.data.shape == (12, 3072) and both.frame.shape == (12, 3073)
    data, labels = _cifar_expected(batches, TRAIN_BATCHES + ["test_batch"])
    np.testing.assert_array_equal(both.target.to_numpy(), labels)
    assert both.target_names[0] == "airplane"  # no meta: built-in names
    with pytest.raises(ValueError, match="subset"):
        fetch_cifar10(data_home=tmp_path, subset="valid")


def test_cifar10_extracted_folder_preferred(tmp_path):
    batches = make_cifar_arrays(seed=1)
    folder = tmp_path / "cifar-10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, (d, y) in batches.items():
        (folder / name).write_bytes(cifar_batch_pickle(d, y))
    # a broken archive next to it must not be read
    (tmp_path / "cifar-10" / "cifar-10-python.tar.gz").write_bytes(b"junk")
    bunch = fetch_cifar10(data_home=tmp_path, subset="test",
                          download_if_missing=False)
    np.testing.assert_array_equal(bunch.target, batches["test_batch"][1])
    assert bunch.filenames == [str(folder / "test_batch")]


def test_cifar10_missing_without_download(tmp_path):
    with pytest.raises(OSError) as info:
        fetch_cifar10(data_home=tmp_path, download_if_missing=False)
    assert "cifar-10-python.tar.gz" in str(info.value)
    assert os.path.join(str(tmp_path), "cifar-10") in str(info.value)


def test_cifar10_corrupted_archive_names_file(tmp_path):
    content = make_cifar_tarball(None, make_cifar_arrays())
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(content[: len(content) // 2])
    with pytest.raises(ValueError, match="corrupted or truncated") as info:
        fetch_cifar10(data_home=tmp_path, download_if_missing=False)
    assert str(archive) in str(info.value)
    archive.write_bytes(b"not an archive")
    with pytest.raises(ValueError) as info:
        fetch_cifar10(data_home=tmp_path, download_if_missing=False)
    assert str(archive) in str(info.value)


def test_cifar10_archive_missing_member(tmp_path):
    batches = make_cifar_arrays()
    archive = tmp_path / "cifar-10-python.tar.gz"
    make_cifar_tarball(archive, batches, members={"test_batch"})
    with pytest.raises(ValueError, match="data_batch_1") as info:
        fetch_cifar10(data_home=tmp_path, download_if_missing=False)
    assert str(archive) in str(info.value)
    # the test split alone is there
    assert fetch_cifar10(data_home=tmp_path, subset="test",
                         download_if_missing=False).data.shape == (3, 3072)


def test_cifar10_bad_batch_contents(tmp_path):
    batches = make_cifar_arrays()
    batches["test_batch"] = (np.zeros((3, 100), np.uint8), [0, 1, 2])
    make_cifar_tarball(tmp_path / "cifar-10-python.tar.gz", batches)
    with pytest.raises(ValueError, match=r"test_batch.*\(n, 3072\)"):
        fetch_cifar10(data_home=tmp_path, subset="test",
                      download_if_missing=False)


class _Evil:
    """Unpickling this would delete the file at ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.remove, (self.path,))


def test_cifar10_refuses_malicious_pickle(tmp_path):
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("still here")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(
        pickle.dumps({b"data": _Evil(str(sentinel)), b"labels": []}))
    with pytest.raises(ValueError, match="not allowed") as info:
        fetch_cifar10(data_home=tmp_path, subset="test",
                      download_if_missing=False)
    assert str(folder / "test_batch") in str(info.value)
    assert sentinel.exists()
    # the same pickle loaded by the plain unpickler really deletes the file
    pickle.loads((folder / "test_batch").read_bytes())
    assert not sentinel.exists()


def test_cifar10_download(monkeypatch, tmp_path):
    batches = make_cifar_arrays(n_per_batch=1)
    content = make_cifar_tarball(None, batches)
    server = FakeServer({datasets.CIFAR10_URL: content})
    monkeypatch.setattr(datasets, "_urlopen", server)
    monkeypatch.setattr(datasets, "CIFAR10_MD5", md5(content))
    bunch = fetch_cifar10(data_home=tmp_path, subset="test")
    np.testing.assert_array_equal(bunch.target, batches["test_batch"][1])
    assert listdir_recursive(tmp_path) == [
        os.path.join("cifar-10", "cifar-10-python.tar.gz")]
    assert server.requested == [datasets.CIFAR10_URL]


def test_cifar10_download_mismatch_unpickles_nothing(monkeypatch, tmp_path):
    content = make_cifar_tarball(None, make_cifar_arrays(n_per_batch=1))
    monkeypatch.setattr(datasets, "_urlopen",
                        FakeServer({datasets.CIFAR10_URL: content}))

    def no_unpickling(*args):
        raise AssertionError("unpickled an unverified download")

    monkeypatch.setattr(datasets, "_unpickle_batch", no_unpickling)
    with pytest.raises(OSError, match=datasets.CIFAR10_MD5):
        fetch_cifar10(data_home=tmp_path)
    assert listdir_recursive(tmp_path) == []


# ---------------------------------------------------------------------------
# MNIST-1D
# ---------------------------------------------------------------------------


def _require_mnist1d():
    try:
        import mnist1d.data  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the optional mnist1d package is not importable: {exc}")


def test_mnist1d_generation(monkeypatch):
    _require_mnist1d()
    import mnist1d.data

    def no_download(*args, **kwargs):
        raise AssertionError("load_mnist1d must not download")

    monkeypatch.setattr(mnist1d.data, "get_dataset", no_download)
    bunch = load_mnist1d(n_samples=50, random_state=3)
    assert bunch.data.shape == (40, 40) and bunch.data.dtype == np.float32
    assert bunch.target.shape == (40,) and bunch.target.dtype == np.int64
    assert set(bunch.target) <= set(range(10))
    assert bunch.t.shape == (40,)
    assert len(bunch.feature_names) == 40 and len(bunch.target_names) == 10
    assert "Greydanus" in bunch.DESCR
    assert bunch.frame is None and "images" not in bunch

    # it is exactly mnist1d's own generator with our seed and size
    args = mnist1d.data.get_dataset_args()
    args.num_samples, args.seed = 50, 3
    reference = mnist1d.data.make_dataset(args)
    np.testing.assert_array_equal(bunch.data,
                                  reference["x"].astype(np.float32))
    np.testing.assert_array_equal(bunch.target, reference["y"])

    test = load_mnist1d(n_samples=50, random_state=3, subset="test")
    np.testing.assert_array_equal(test.data,
                                  reference["x_test"].astype(np.float32))
    X, y = load_mnist1d(n_samples=50, random_state=3, subset="all",
                        return_X_y=True)
    assert X.shape == (50, 40)
    np.testing.assert_array_equal(X, np.concatenate([bunch.data, test.data]))
    np.testing.assert_array_equal(y, np.concatenate([bunch.target,
                                                     test.target]))


def test_mnist1d_random_state_and_global_rng():
    _require_mnist1d()
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    a = load_mnist1d(n_samples=20, random_state=0)
    # the caller's global generators are untouched
    assert np.random.rand() == expected_np
    assert random.random() == expected_py
    b = load_mnist1d(n_samples=20, random_state=0)
    c = load_mnist1d(n_samples=20, random_state=1)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    d = load_mnist1d(n_samples=20, random_state=np.random.RandomState(0))
    assert d.data.shape == (16, 40)


def test_mnist1d_as_frame():
    _require_mnist1d()
    pd = pytest.importorskip("pandas")
    bunch = load_mnist1d(n_samples=20, as_frame=True)
    assert isinstance(bunch.data, pd.DataFrame)
    assert bunch.data.shape == (16, 40) and bunch.frame.shape == (16, 41)
    assert bunch.target.name == "class"


@pytest.mark.parametrize("n_samples", [0, 5, 25, 2.5, True, "100"])
def test_mnist1d_invalid_n_samples(n_samples):
    _require_mnist1d()
    with pytest.raises(ValueError, match="multiple of 10"):
        load_mnist1d(n_samples=n_samples)


def test_mnist1d_invalid_subset_and_seed():
    _require_mnist1d()
    with pytest.raises(ValueError, match="subset"):
        load_mnist1d(subset="valid", n_samples=10)
    with pytest.raises(ValueError, match="random_state"):
        load_mnist1d(n_samples=10, random_state=-1)


def test_mnist1d_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match=r"pip install mnist1d") as info:
        load_mnist1d(n_samples=10)
    assert "sklottery[mnist1d]" in str(info.value)


# ---------------------------------------------------------------------------
# Real data
# ---------------------------------------------------------------------------


def test_real_fashion_mnist(monkeypatch, tmp_path):
    if not all(os.path.isfile(os.path.join(REAL_FASHION_DIR, f))
               for f in IDX_FILES.values()):
        pytest.skip(
            f"real Fashion-MNIST files not found in {REAL_FASHION_DIR} "
            "(install the Debian package dataset-fashion-mnist)"
        )
    # the default search (empty data home, then the system folder)
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIRS",
                        DEFAULT_FASHION_SYSTEM_DIRS)
    bunch = fetch_fashion_mnist(data_home=tmp_path, subset="all",
                                download_if_missing=False)
    assert bunch.data.shape == (70000, 784)
    assert bunch.images.shape == (70000, 1, 28, 28)
    assert all(f.startswith(REAL_FASHION_DIR) for f in bunch.filenames)
    train, test = bunch.target[:60000], bunch.target[60000:]
    np.testing.assert_array_equal(np.bincount(train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test), [1000] * 10)
    assert bunch.data.min() == 0.0 and bunch.data.max() == 1.0
    # the well-known normalisation constants of the training set
    assert abs(float(bunch.data[:60000].mean()) - 0.2860) < 5e-4
    assert abs(float(bunch.data[:60000].std()) - 0.3530) < 5e-4
    assert train[0] == 9 and test[0] == 9  # both start with an ankle boot
    assert bunch.target_names[9] == "Ankle boot"


# gzip mtimes of the official Fashion-MNIST files (2017-08-31), found by
# rebuilding the original gzip header around Debian's deflate streams
OFFICIAL_FASHION_GZIP_MTIME = {
    "train-images-idx3-ubyte.gz": 1504176606,
    "train-labels-idx1-ubyte.gz": 1504176606,
    "t10k-images-idx3-ubyte.gz": 1504176627,
    "t10k-labels-idx1-ubyte.gz": 1504176627,
}


def test_real_fashion_mnist_matches_official_checksums():
    """Debian's copies are the official files with a rewritten gzip header.

    The Debian package stores the files with the gzip header's file name
    dropped and its mtime changed, so their MD5 differs from the official
    one; the deflate stream is unchanged. Putting the original header back
    must give exactly the checksums in FASHION_MNIST_MD5.
    """
    for name in IDX_FILES.values():
        path = os.path.join(REAL_FASHION_DIR, name)
        if not os.path.isfile(path):
            pytest.skip(f"real Fashion-MNIST file {path} not found (install "
                        "the Debian package dataset-fashion-mnist)")
        with open(path, "rb") as f:
            content = f.read()
        if content[:4] != b"\x1f\x8b\x08\x00" or content[8:10] != b"\x00\x03":
            pytest.skip(f"{path} does not have the gzip header layout of "
                        "Debian's dataset-fashion-mnist 0.0~git20200523")
        header = (b"\x1f\x8b\x08\x08"
                  + OFFICIAL_FASHION_GZIP_MTIME[name].to_bytes(4, "little")
                  + b"\x00\x03" + name[: -len(".gz")].encode() + b"\x00")
        assert md5(header + content[10:]) == datasets.FASHION_MNIST_MD5[name]
