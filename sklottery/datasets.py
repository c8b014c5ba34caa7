"""Dataset loaders in the style of :mod:`sklearn.datasets`.

The image loaders (:func:`fetch_mnist`, :func:`fetch_fashion_mnist`,
:func:`fetch_cifar10`) follow the conventions of
:func:`sklearn.datasets.fetch_openml` and
:func:`sklearn.datasets.fetch_covtype`: they return a
:class:`sklearn.utils.Bunch` (or ``(X, y)`` with ``return_X_y=True``),
accept ``data_home``, ``download_if_missing`` and ``as_frame``, and cache
downloaded files under :func:`get_data_home`. :func:`load_mnist1d`
generates MNIST-1D locally with the optional ``mnist1d``
package and never downloads anything.

Where the files are looked for
------------------------------
For each file a loader needs, the following places are searched in order:

1. ``<home>/<dataset>/`` then ``<home>/`` itself, where ``<home>`` is
   :func:`get_data_home` (the ``data_home`` argument, else the
   ``SKLOTTERY_DATA`` environment variable, else ``~/sklottery_data``) and
   ``<dataset>`` is ``mnist``, ``fashion-mnist`` or ``cifar-10``;
2. well-known system locations (for Fashion-MNIST,
   ``/usr/share/datasets/fashion-mnist/``, installed by the Debian package
   ``dataset-fashion-mnist``);
3. otherwise, if ``download_if_missing=True``, the file is downloaded from the
   dataset's canonical source into ``<home>/<dataset>/``.

Downloads are written to a temporary file in the target folder, verified
against the checksum of the official file (the MD5 sums that the dataset
authors and torchvision publish) and only then renamed to their final name,
so an interrupted or corrupted download never leaves a file that a later
call would load. Files found locally are not checksummed (repackaged copies,
such as Debian's, differ byte-wise from the official archives) but are
validated structurally; a corrupted or truncated file raises a
:class:`ValueError` naming it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import numbers
import os
import pickle
import random
import tarfile
import tempfile
import urllib.request
import zlib

import numpy as np
from sklearn.utils import Bunch, check_random_state

__all__ = [
    "get_data_home",
    "fetch_mnist",
    "fetch_fashion_mnist",
    "fetch_cifar10",
    "load_mnist1d",
]

# ---------------------------------------------------------------------------
# Canonical sources and checksums of the official files.
# ---------------------------------------------------------------------------

#: Environment variable naming the data home (see :func:`get_data_home`).
DATA_HOME_ENV = "SKLOTTERY_DATA"

#: Default data home when neither ``data_home`` nor the environment variable
#: is given.
DEFAULT_DATA_HOME = os.path.join("~", "sklottery_data")

#: Canonical source of MNIST (Yann LeCun's page, as used by torchvision).
MNIST_URL = "http://yann.lecun.com/exdb/mnist/"

#: MD5 sums of the official MNIST files (as published in torchvision).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

#: Canonical source of Fashion-MNIST (Zalando Research's download links).
FASHION_MNIST_URL = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
)

#: MD5 sums of the official Fashion-MNIST files (as published in the dataset's
#: README and in torchvision). The copies of the Debian package
#: ``dataset-fashion-mnist`` have other MD5 sums: they hold the same deflate
#: streams under a rewritten gzip header (no file name, another mtime);
#: putting the original header back gives exactly these sums.
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

#: Places where operating-system packages install Fashion-MNIST.
FASHION_MNIST_SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)

#: Places where operating-system packages install MNIST (none known).
MNIST_SYSTEM_DIRS = ()

#: Places where operating-system packages install CIFAR-10 (none known).
CIFAR10_SYSTEM_DIRS = ()

#: Canonical source of CIFAR-10, python version (Alex Krizhevsky's page).
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

#: Name of the CIFAR-10 archive.
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"

#: MD5 sum of the official CIFAR-10 archive (as published in torchvision).
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_TEST_BATCHES = ("test_batch",)

_MNIST_CLASSES = tuple(str(i) for i in range(10))
_FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_IDX_IMAGES_MAGIC = 0x00000803  # 2051: unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # 2049: unsigned bytes, 1 dimension

_SUBSETS = ("train", "test", "all")

# ---------------------------------------------------------------------------
# Descriptions.
# ---------------------------------------------------------------------------

_MNIST_DESCR = """\
.. _mnist_dataset:

MNIST handwritten digits dataset
--------------------------------

**Data Set Characteristics:**

:Number of Instances: 70,000 (60,000 train, 10,000 test)
:Number of Attributes: 784 (28x28 grey-level pixels, scaled to [0, 1])
:Classes: 10 (digits 0-9)
:Source: Yann LeCun, Corinna Cortes and Christopher J.C. Burges,
    http://yann.lecun.com/exdb/mnist/

The digits were size-normalised and centred in a 28x28 image, from NIST
Special Databases 1 and 3 (handwriting of Census Bureau employees and high
school students). The 60,000 training images come from about 250 writers;
the writers of the training and test sets are disjoint.

The original page states no licence; MNIST is commonly redistributed under
the Creative Commons Attribution-Share Alike 3.0 licence. Check the terms of
the source before redistributing.

.. rubric:: References

- Y. LeCun, L. Bottou, Y. Bengio and P. Haffner (1998). Gradient-based
  learning applied to document recognition. Proceedings of the IEEE,
  86(11):2278-2324.
"""

_FASHION_MNIST_DESCR = """\
.. _fashion_mnist_dataset:

Fashion-MNIST dataset
---------------------

**Data Set Characteristics:**

:Number of Instances: 70,000 (60,000 train, 10,000 test; 7,000 per class)
:Number of Attributes: 784 (28x28 grey-level pixels, scaled to [0, 1])
:Classes: 10 (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt,
    Sneaker, Bag, Ankle boot)
:Source: Zalando Research, https://github.com/zalandoresearch/fashion-mnist
:License: MIT License, Copyright (c) 2017 Zalando SE

Fashion-MNIST consists of images of Zalando's article photos, converted to
28x28 grey-level images. It is a drop-in replacement for MNIST (same image
size, number of classes, split sizes and file format) that is harder to
classify.

.. rubric:: References

- H. Xiao, K. Rasul and R. Vollgraf (2017). Fashion-MNIST: a Novel Image
  Dataset for Benchmarking Machine Learning Algorithms. arXiv:1708.07747.
"""

_CIFAR10_DESCR = """\
.. _cifar10_dataset:

CIFAR-10 dataset
----------------

**Data Set Characteristics:**

:Number of Instances: 60,000 (50,000 train, 10,000 test; 6,000 per class)
:Number of Attributes: 3072 (32x32 colour images, 3 channels RGB, scaled to
    [0, 1]; ``images`` has shape (n, 3, 32, 32))
:Classes: 10 (airplane, automobile, bird, cat, deer, dog, frog, horse, ship,
    truck)
:Source: Alex Krizhevsky, Vinod Nair and Geoffrey Hinton,
    https://www.cs.toronto.edu/~kriz/cifar.html

CIFAR-10 is a labelled subset of the 80 million tiny images dataset. The
classes are mutually exclusive. The training set is distributed as five
batches of 10,000 images; the test set holds 1,000 images of each class.

No licence is stated by the source; it asks that work using the dataset
cite the technical report below.

.. rubric:: References

- A. Krizhevsky (2009). Learning Multiple Layers of Features from Tiny
  Images. Technical Report, University of Toronto.
"""

_MNIST1D_DESCR = """\
.. _mnist1d_dataset:

MNIST-1D dataset
----------------

**Data Set Characteristics:**

:Number of Instances: ``n_samples`` (default 5,000), split 80% train /
    20% test
:Number of Attributes: 40 (a one-dimensional signal, standardised to zero
    mean and unit variance over the whole generated set)
:Classes: 10 (one template per digit 0-9)
:Source: Sam Greydanus and Dmitry Kobak, https://github.com/greydanus/mnist1d,
    generated locally with the ``mnist1d`` package
:License: Apache License 2.0 (the ``mnist1d`` package)

Each example is one of ten hand-designed 1D templates, padded, scaled,
translated, sheared, and corrupted with correlated and i.i.d. noise, then
resampled to 40 points. The dataset is small enough to train on a CPU in
seconds while still separating model families (MLP, CNN, GRU) in accuracy.

.. rubric:: References

- S. Greydanus and D. Kobak (2024). Scaling Down Deep Learning with
  MNIST-1D. Proceedings of the 41st International Conference on Machine
  Learning (ICML). arXiv:2011.14439.
"""

# ---------------------------------------------------------------------------
# Data home and file lookup.
# ---------------------------------------------------------------------------


def get_data_home(data_home=None):
    """Return the path of the sklottery data folder.

    The folder is used to cache the datasets that the ``fetch_*`` loaders
    download. It is, by order of precedence, the ``data_home`` argument, the
    ``SKLOTTERY_DATA`` environment variable, or ``~/sklottery_data``. A
    leading ``~`` is expanded to the user's home folder.

    Unlike :func:`sklearn.datasets.get_data_home`, the folder is *not* created
    here: the loaders create it only when they download a file.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The path to the data folder. If None, the ``SKLOTTERY_DATA``
        environment variable is used if set and non-empty, else
        ``~/sklottery_data``.

    Returns
    -------
    data_home : str
        The path to the data folder.

    See Also
    --------
    fetch_fashion_mnist : One of the loaders that use it.

    Examples
    --------
    >>> from sklottery.datasets import get_data_home
    >>> get_data_home("/tmp/my_data")
    '/tmp/my_data'
    """
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or DEFAULT_DATA_HOME
    return os.path.expanduser(os.fspath(data_home))


def _search_dirs(data_home, subdir, system_dirs):
    home = get_data_home(data_home)
    return [os.path.join(home, subdir), home, *system_dirs]


def _check_subset(subset):
    if subset not in _SUBSETS:
        raise ValueError(
            f"subset can only be 'train', 'test' or 'all', got {subset!r}."
        )
    return ("train", "test") if subset == "all" else (subset,)


def _urlopen(url, timeout=60):
    """Open ``url`` for reading; a seam for tests (no network in tests)."""
    return urllib.request.urlopen(url, timeout=timeout)


def _download(url, dest, md5):
    """Download ``url`` to ``dest``, atomically and checksum-verified.

    The bytes are streamed into a temporary file next to ``dest``; the file
    is renamed to ``dest`` only once its MD5 sum equals ``md5``. On any error
    (network failure, interruption, checksum mismatch) the temporary file is
    removed and ``dest`` is left untouched.
    """
    folder = os.path.dirname(dest)
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(
        prefix="." + os.path.basename(dest) + ".", suffix=".part", dir=folder
    )
    try:
        hasher = hashlib.md5()
        with os.fdopen(fd, "wb") as out:
            try:
                with _urlopen(url) as response:
                    while True:
                        chunk = response.read(1 << 20)
                        if not chunk:
                            break
                        hasher.update(chunk)
                        out.write(chunk)
            except Exception as exc:
                raise OSError(
                    f"Downloading {url} to {dest!r} failed: {exc!r}. Nothing "
                    "was kept; try again, or put the file there yourself."
                ) from exc
        digest = hasher.hexdigest()
        if digest != md5:
            raise OSError(
                f"The file downloaded from {url} has MD5 {digest}, but the "
                f"official file has MD5 {md5}; it was discarded (not saved "
                f"as {dest!r}). The download may be corrupted or the source "
                "may have changed."
            )
        os.replace(tmp_path, dest)
    except BaseException:
        try:
            os.remove(tmp_path)
        except FileNotFoundError:
            pass
        raise
    return dest


def _find_or_fetch(
    names, dirs, download_dir, url, md5, download_if_missing, dataset
):
    """Return the first ``dir/name`` that exists, else download ``names[0]``.

    ``names`` are the accepted file names (the first one is the official,
    downloadable one); ``dirs`` are searched in order, and for each folder the
    names in order.
    """
    for folder in dirs:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    if not download_if_missing:
        alternatives = "".join(f" or {n!r}" for n in names[1:])
        raise OSError(
            f"{dataset} file {names[0]!r}{alternatives} not found in any of: "
            f"{', '.join(dirs)}; and download_if_missing=False. Put the file "
            f"in one of these folders, or allow the download from {url}."
        )
    return _download(url, os.path.join(download_dir, names[0]), md5)


# ---------------------------------------------------------------------------
# IDX format (MNIST, Fashion-MNIST).
# ---------------------------------------------------------------------------


def _read_idx(path, expected_magic):
    """Read an unsigned-byte IDX file (optionally gzip'd) into a uint8 array.

    Raises ValueError naming ``path`` when the gzip stream is corrupt or
    truncated, the magic number is wrong, or the payload size disagrees with
    the dimensions in the header.
    """
    with open(path, "rb") as raw_file:
        if path.endswith(".gz"):
            try:
                with gzip.GzipFile(fileobj=raw_file, mode="rb") as gz:
                    raw = gz.read()
            except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
                raise ValueError(
                    f"Could not decompress {path!r}: {exc}. The file is "
                    "corrupted or truncated; delete it and fetch it again."
                ) from exc
        else:
            raw = raw_file.read()
    if len(raw) < 4:
        raise ValueError(
            f"{path!r} is not an IDX file: only {len(raw)} bytes, too short "
            "for the 4-byte magic number."
        )
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise ValueError(
            f"{path!r} has IDX magic number 0x{magic:08X}, expected "
            f"0x{expected_magic:08X} (unsigned bytes, "
            f"{expected_magic & 0xFF} dimension(s)); it is not the expected "
            "IDX file, or it is corrupted."
        )
    ndim = expected_magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(
            f"{path!r} is truncated: {len(raw)} bytes, shorter than its "
            f"{header_size}-byte IDX header."
        )
    shape = tuple(
        int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(raw) - header_size
    if actual != expected:
        what = "is truncated" if actual < expected else "has trailing bytes"
        raise ValueError(
            f"{path!r} {what}: its IDX header announces shape {shape} "
            f"({expected} bytes of data) but {actual} bytes follow the header."
        )
    data = np.frombuffer(raw, dtype=np.uint8, offset=header_size)
    return data.reshape(shape)


def _load_idx_subset(
    subset, dirs, download_dir, base_url, md5s, download_if_missing, dataset
):
    """Return (images uint8 (n, 1, H, W), labels int64, paths) of one split."""
    prefix = "train" if subset == "train" else "t10k"
    paths = []
    arrays = []
    for kind, magic in (("images-idx3", _IDX_IMAGES_MAGIC),
                        ("labels-idx1", _IDX_LABELS_MAGIC)):
        name = f"{prefix}-{kind}-ubyte.gz"
        path = _find_or_fetch(
            (name, name[: -len(".gz")]),
            dirs,
            download_dir,
            base_url + name,
            md5s[name],
            download_if_missing,
            dataset,
        )
        paths.append(path)
        arrays.append(_read_idx(path, magic))
    images, labels = arrays
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{paths[0]!r} holds {images.shape[0]} images but {paths[1]!r} "
            f"holds {labels.shape[0]} labels."
        )
    if labels.size and labels.max() > 9:
        raise ValueError(
            f"{paths[1]!r} holds label {int(labels.max())}; {dataset} labels "
            "are 0-9. The file is corrupted or not a label file."
        )
    return images[:, np.newaxis], labels.astype(np.int64), paths


# ---------------------------------------------------------------------------
# Bunch construction.
# ---------------------------------------------------------------------------


def _image_feature_names(shape):
    channels, height, width = shape
    if channels == 1:
        return [f"pixel_{r}_{c}" for r in range(height) for c in range(width)]
    colours = ("red", "green", "blue") if channels == 3 else [
        f"ch{i}" for i in range(channels)
    ]
    return [
        f"{colours[k]}_{r}_{c}"
        for k in range(channels)
        for r in range(height)
        for c in range(width)
    ]


def _as_frame(data, target, feature_names):
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas is a test dep
        raise ImportError(
            "as_frame=True requires pandas: pip install pandas"
        ) from exc
    X = pd.DataFrame(data, columns=feature_names, copy=False)
    y = pd.Series(target, name="class")
    frame = pd.concat([X, y], axis=1)
    return X, y, frame


def _finish(
    data,
    target,
    *,
    images_shape,
    target_names,
    feature_names,
    descr,
    return_X_y,
    as_frame,
    **extra,
):
    """Build the loader's return value from float32 ``data`` (n, d)."""
    images = None
    if images_shape is not None:
        images = data.reshape((data.shape[0], *images_shape))  # a view
    frame = None
    if as_frame:
        data, target, frame = _as_frame(data, target, feature_names)
    if return_X_y:
        return data, target
    bunch = Bunch(
        data=data,
        target=target,
        frame=frame,
        target_names=np.asarray(target_names),
        feature_names=list(feature_names),
        DESCR=descr,
        **extra,
    )
    if images is not None:
        bunch["images"] = images
    return bunch


def _to_float01(images_u8):
    """(n, C, H, W) uint8 -> C-contiguous (n, C*H*W) float32 in [0, 1]."""
    data = images_u8.reshape(images_u8.shape[0], -1).astype(np.float32)
    data /= np.float32(255.0)
    return data


def _fetch_idx_dataset(
    *,
    dataset,
    subdir,
    base_url,
    md5s,
    system_dirs,
    target_names,
    descr,
    data_home,
    subset,
    download_if_missing,
    return_X_y,
    as_frame,
):
    splits = _check_subset(subset)
    dirs = _search_dirs(data_home, subdir, system_dirs)
    download_dir = os.path.join(get_data_home(data_home), subdir)
    images, targets, filenames = [], [], []
    for split in splits:
        x, y, paths = _load_idx_subset(
            split, dirs, download_dir, base_url, md5s, download_if_missing,
            dataset,
        )
        images.append(x)
        targets.append(y)
        filenames.extend(paths)
    images = images[0] if len(images) == 1 else np.concatenate(images)
    target = targets[0] if len(targets) == 1 else np.concatenate(targets)
    return _finish(
        _to_float01(images),
        target,
        images_shape=images.shape[1:],
        target_names=target_names,
        feature_names=_image_feature_names(images.shape[1:]),
        descr=descr,
        return_X_y=return_X_y,
        as_frame=as_frame,
        filenames=filenames,
    )


# ---------------------------------------------------------------------------
# Public IDX loaders.
# ---------------------------------------------------------------------------


def fetch_mnist(
    *,
    data_home=None,
    subset="train",
    download_if_missing=True,
    return_X_y=False,
    as_frame=False,
):
    """Load the MNIST handwritten digits dataset (classification).

    Reads the four official gzip'd IDX files (``train-images-idx3-ubyte.gz``,
    ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
    ``t10k-labels-idx1-ubyte.gz``; uncompressed copies without ``.gz`` are
    accepted too), downloading the ones that are missing from
    :data:`MNIST_URL` and checking them against :data:`MNIST_MD5`.

    ==================  ==============
    Classes                         10
    Samples total                70000
    Samples train/test     60000/10000
    Dimensionality                 784
    Features            real, in [0,1]
    ==================  ==============

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder where the files are looked for (in ``<data_home>/mnist/``
        and then in ``<data_home>/``) and downloaded to (in
        ``<data_home>/mnist/``). If None, see :func:`get_data_home`
        (``SKLOTTERY_DATA`` environment variable, else ``~/sklottery_data``).
    subset : {'train', 'test', 'all'}, default='train'
        Which split to load: the 60,000 training images, the 10,000 test
        images, or both concatenated (training set first).
    download_if_missing : bool, default=True
        If False, raise an :class:`OSError` when a file is not found locally
        instead of downloading it from the canonical source.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame (columns ``feature_names``),
        ``target`` a pandas Series named ``'class'``, and ``frame`` a
        DataFrame with both. ``images`` stays a NumPy array.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : ndarray of shape (n_samples, 784), dtype float32, or DataFrame
            Pixel intensities scaled to [0, 1], rows of the images in
            row-major order.
        target : ndarray of shape (n_samples,), dtype int64, or Series
            Class labels 0-9.
        images : ndarray of shape (n_samples, 1, 28, 28), dtype float32
            The images; a view of ``data`` (when ``as_frame=False``).
        frame : DataFrame of shape (n_samples, 785) or None
            Only when ``as_frame=True``: data and target together.
        target_names : ndarray of str of shape (10,)
            The class names, indexed by label.
        feature_names : list of str of length 784
            ``'pixel_<row>_<col>'``.
        filenames : list of str
            The files that were read (images and labels of each split).
        DESCR : str
            Description of the dataset: source, size, licence, citation.

    (data, target) : tuple if ``return_X_y`` is True
        The ``data`` and ``target`` described above.

    Raises
    ------
    OSError
        If a file is missing and ``download_if_missing=False`` (the message
        names the file and the folders searched), or if a download fails or
        does not match the official checksum (nothing is left on disk).
    ValueError
        If ``subset`` is invalid, or if a file is corrupted or truncated (the
        message names the file).

    See Also
    --------
    fetch_fashion_mnist : A harder drop-in replacement.
    sklearn.datasets.fetch_openml : The conventions followed here.

    References
    ----------
    .. [1] LeCun, Y., Bottou, L., Bengio, Y. and Haffner, P. (1998).
       Gradient-Based Learning Applied to Document Recognition. Proceedings of
       the IEEE, 86(11), 2278-2324.

    Examples
    --------
    >>> from sklottery.datasets import fetch_mnist
    >>> X, y = fetch_mnist(subset="test", return_X_y=True)  # doctest: +SKIP
    >>> X.shape, X.dtype, y.dtype  # doctest: +SKIP
    ((10000, 784), dtype('float32'), dtype('int64'))
    """
    return _fetch_idx_dataset(
        dataset="MNIST",
        subdir="mnist",
        base_url=MNIST_URL,
        md5s=MNIST_MD5,
        system_dirs=MNIST_SYSTEM_DIRS,
        target_names=_MNIST_CLASSES,
        descr=_MNIST_DESCR,
        data_home=data_home,
        subset=subset,
        download_if_missing=download_if_missing,
        return_X_y=return_X_y,
        as_frame=as_frame,
    )


def fetch_fashion_mnist(
    *,
    data_home=None,
    subset="train",
    download_if_missing=True,
    return_X_y=False,
    as_frame=False,
):
    """Load the Fashion-MNIST dataset (classification).

    Reads the four gzip'd IDX files (``train-images-idx3-ubyte.gz``,
    ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
    ``t10k-labels-idx1-ubyte.gz``; uncompressed copies without ``.gz`` are
    accepted too). After the data home, the files are looked for in
    :data:`FASHION_MNIST_SYSTEM_DIRS` (``/usr/share/datasets/fashion-mnist/``,
    where ``apt-get install dataset-fashion-mnist`` puts them on Debian and
    Ubuntu); missing files are downloaded from :data:`FASHION_MNIST_URL` and
    checked against :data:`FASHION_MNIST_MD5`.

    ==================  ==============
    Classes                         10
    Samples total                70000
    Samples train/test     60000/10000
    Dimensionality                 784
    Features            real, in [0,1]
    ==================  ==============

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder where the files are looked for (in
        ``<data_home>/fashion-mnist/`` and then in ``<data_home>/``) and
        downloaded to (in ``<data_home>/fashion-mnist/``). If None, see
        :func:`get_data_home` (``SKLOTTERY_DATA`` environment variable,
        else ``~/sklottery_data``).
    subset : {'train', 'test', 'all'}, default='train'
        Which split to load: the 60,000 training images, the 10,000 test
        images, or both concatenated (training set first).
    download_if_missing : bool, default=True
        If False, raise an :class:`OSError` when a file is not found locally
        instead of downloading it from the canonical source.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame (columns ``feature_names``),
        ``target`` a pandas Series named ``'class'``, and ``frame`` a
        DataFrame with both. ``images`` stays a NumPy array.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : ndarray of shape (n_samples, 784), dtype float32, or DataFrame
            Pixel intensities scaled to [0, 1], rows of the images in
            row-major order.
        target : ndarray of shape (n_samples,), dtype int64, or Series
            Class labels 0-9.
        images : ndarray of shape (n_samples, 1, 28, 28), dtype float32
            The images; a view of ``data`` (when ``as_frame=False``).
        frame : DataFrame of shape (n_samples, 785) or None
            Only when ``as_frame=True``: data and target together.
        target_names : ndarray of str of shape (10,)
            The class names, indexed by label.
        feature_names : list of str of length 784
            ``'pixel_<row>_<col>'``.
        filenames : list of str
            The files that were read (images and labels of each split).
        DESCR : str
            Description of the dataset: source, size, licence, citation.

    (data, target) : tuple if ``return_X_y`` is True
        The ``data`` and ``target`` described above.

    Raises
    ------
    OSError
        If a file is missing and ``download_if_missing=False`` (the message
        names the file and the folders searched), or if a download fails or
        does not match the official checksum (nothing is left on disk).
    ValueError
        If ``subset`` is invalid, or if a file is corrupted or truncated (the
        message names the file).

    See Also
    --------
    fetch_mnist : The original handwritten digits.
    sklearn.datasets.fetch_openml : The conventions followed here.

    References
    ----------
    .. [1] Xiao, H., Rasul, K. and Vollgraf, R. (2017). Fashion-MNIST: a Novel
       Image Dataset for Benchmarking Machine Learning Algorithms.
       arXiv:1708.07747.

    Examples
    --------
    >>> from sklottery.datasets import fetch_fashion_mnist
    >>> bunch = fetch_fashion_mnist(subset="test")  # doctest: +SKIP
    >>> bunch.images.shape, bunch.target_names[9]  # doctest: +SKIP
    ((10000, 1, 28, 28), 'Ankle boot')
    """
    return _fetch_idx_dataset(
        dataset="Fashion-MNIST",
        subdir="fashion-mnist",
        base_url=FASHION_MNIST_URL,
        md5s=FASHION_MNIST_MD5,
        system_dirs=FASHION_MNIST_SYSTEM_DIRS,
        target_names=_FASHION_MNIST_CLASSES,
        descr=_FASHION_MNIST_DESCR,
        data_home=data_home,
        subset=subset,
        download_if_missing=download_if_missing,
        return_X_y=return_X_y,
        as_frame=as_frame,
    )


# ---------------------------------------------------------------------------
# CIFAR-10.
# ---------------------------------------------------------------------------


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals a CIFAR batch needs.

    The CIFAR-10 batches are Python-2 pickles of dicts holding a NumPy uint8
    array, lists of ints and byte strings. Rebuilding them needs only NumPy's
    array reconstruction; every other global (``os.system``, ``eval``, ...) is
    refused, which defuses malicious pickles that rely on importing them.
    """

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"global {module}.{name} is not allowed in a CIFAR-10 batch"
        )


def _unpickle_batch(raw, where):
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:
        raise ValueError(
            f"Could not unpickle {where}: {exc!r}. The file is corrupted or "
            "not a CIFAR-10 batch."
        ) from exc
    if not isinstance(obj, dict):
        raise ValueError(
            f"{where} holds a {type(obj).__name__}, not a CIFAR-10 batch dict."
        )
    return {
        (k.decode("latin1") if isinstance(k, bytes) else k): v
        for k, v in obj.items()
    }


def _parse_batch(batch, where):
    try:
        data = np.asarray(batch["data"])
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{where} is not a CIFAR-10 batch (needs 'data' and integer "
            f"'labels'): {exc!r}"
        ) from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(
            f"{where}: 'data' is {data.dtype} of shape {data.shape}, expected "
            "uint8 of shape (n, 3072)."
        )
    if labels.shape != (data.shape[0],):
        raise ValueError(
            f"{where}: {data.shape[0]} images but labels of shape "
            f"{labels.shape}."
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{where}: labels outside 0-9.")
    return data.reshape(-1, 3, 32, 32), labels


def _read_cifar_members(path, members, optional=()):
    """Read ``cifar-10-batches-py/<member>`` from the archive at ``path``.

    Returns {member: bytes}, in one pass over the archive. Only regular files
    at exactly the expected names are read; nothing is extracted to disk.
    ``members`` must all be present, ``optional`` ones may be missing.
    """
    wanted = {f"{_CIFAR10_FOLDER}/{m}": m for m in (*members, *optional)}
    found = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                member = wanted.get(info.name)
                if member is not None and info.isfile():
                    found[member] = tar.extractfile(info).read()
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(
            f"Could not read the archive {path!r}: {exc!r}. It is corrupted "
            "or truncated; delete it and fetch it again."
        ) from exc
    missing = [m for m in members if m not in found]
    if missing:
        raise ValueError(
            f"The archive {path!r} lacks "
            f"{', '.join(f'{_CIFAR10_FOLDER}/{m}' for m in missing)}; it is "
            "not the CIFAR-10 python archive, or it is truncated."
        )
    return found


def _locate_cifar(dirs, batches):
    """Return ('dir', folder) or ('archive', path) or None."""
    for folder in dirs:
        extracted = os.path.join(folder, _CIFAR10_FOLDER)
        if all(os.path.isfile(os.path.join(extracted, b)) for b in batches):
            return "dir", extracted
        archive = os.path.join(folder, CIFAR10_ARCHIVE)
        if os.path.isfile(archive):
            return "archive", archive
    return None


def fetch_cifar10(
    *,
    data_home=None,
    subset="train",
    download_if_missing=True,
    return_X_y=False,
    as_frame=False,
):
    """Load the CIFAR-10 dataset, python version (classification).

    In each search folder (``<data_home>/cifar-10/``, ``<data_home>/``, see
    :func:`get_data_home`), the extracted folder ``cifar-10-batches-py/``
    (``data_batch_1`` ... ``data_batch_5``, ``test_batch``,
    ``batches.meta``) is used if it holds the needed batches, else the
    archive ``cifar-10-python.tar.gz``, which is read in place without
    extracting it. If neither is found, the archive is downloaded from
    :data:`CIFAR10_URL` into ``<data_home>/cifar-10/`` and checked against
    :data:`CIFAR10_MD5` *before* anything in it is unpickled.

    ==================  ==============
    Classes                         10
    Samples total                60000
    Samples train/test     50000/10000
    Dimensionality                3072
    Features            real, in [0,1]
    ==================  ==============

    .. warning:: The CIFAR-10 batches are Python pickles, and unpickling data
       from an untrusted source can execute arbitrary code. Only the files
       at the expected names (``cifar-10-batches-py/<batch>``) are unpickled;
       a downloaded archive is checksum-verified before it is saved; and
       batches are loaded with ``encoding='bytes'`` by an unpickler that
       refuses every global except NumPy's array reconstruction. Local files
       are not checksummed, so still only put archives from a source you
       trust in the data folders.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder where the data is looked for (in ``<data_home>/cifar-10/``
        and then in ``<data_home>/``) and downloaded to (in
        ``<data_home>/cifar-10/``). If None, see :func:`get_data_home`.
    subset : {'train', 'test', 'all'}, default='train'
        Which split to load: the 50,000 training images (batches 1-5 in
        order), the 10,000 test images, or both (training set first).
    download_if_missing : bool, default=True
        If False, raise an :class:`OSError` when the data is not found
        locally instead of downloading it.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame (columns ``feature_names``),
        ``target`` a pandas Series named ``'class'``, and ``frame`` a
        DataFrame with both. ``images`` stays a NumPy array.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : ndarray of shape (n_samples, 3072), dtype float32, or DataFrame
            Pixel intensities scaled to [0, 1], in the order of the original
            files: the 1024 red values (row-major), then green, then blue.
        target : ndarray of shape (n_samples,), dtype int64, or Series
            Class labels 0-9.
        images : ndarray of shape (n_samples, 3, 32, 32), dtype float32
            The images, channels first; a view of ``data`` (when
            ``as_frame=False``).
        frame : DataFrame of shape (n_samples, 3073) or None
            Only when ``as_frame=True``: data and target together.
        target_names : ndarray of str of shape (10,)
            The class names (from ``batches.meta`` when present).
        feature_names : list of str of length 3072
            ``'<red|green|blue>_<row>_<col>'``.
        filenames : list of str
            Where each batch was read from.
        DESCR : str
            Description of the dataset: source, size, licence, citation.

    (data, target) : tuple if ``return_X_y`` is True
        The ``data`` and ``target`` described above.

    Raises
    ------
    OSError
        If the data is missing and ``download_if_missing=False`` (the message
        names the archive and the folders searched), or if a download fails
        or does not match the official checksum (nothing is left on disk).
    ValueError
        If ``subset`` is invalid, or if the archive or a batch is corrupted,
        truncated or not a CIFAR-10 batch (the message names the file).

    See Also
    --------
    sklottery.modules.Conv2 : Frankle & Carbin's CIFAR-10 networks.
    sklearn.datasets.fetch_openml : The conventions followed here.

    References
    ----------
    .. [1] Krizhevsky, A. (2009). Learning Multiple Layers of Features from Tiny
       Images. Technical Report, University of Toronto.
    .. [2] Frankle, J. and Carbin, M. (2019). The Lottery Ticket Hypothesis:
       Finding Sparse, Trainable Neural Networks. ICLR. arXiv:1803.03635.

    Examples
    --------
    >>> from sklottery.datasets import fetch_cifar10
    >>> bunch = fetch_cifar10(subset="test")  # doctest: +SKIP
    >>> bunch.images.shape  # doctest: +SKIP
    (10000, 3, 32, 32)
    """
    splits = _check_subset(subset)
    batches = []
    for split in splits:
        batches.extend(
            _CIFAR10_TRAIN_BATCHES if split == "train"
            else _CIFAR10_TEST_BATCHES
        )
    dirs = _search_dirs(data_home, "cifar-10", CIFAR10_SYSTEM_DIRS)
    located = _locate_cifar(dirs, batches)
    if located is None:
        archive = _find_or_fetch(
            (CIFAR10_ARCHIVE,),
            dirs,
            os.path.join(get_data_home(data_home), "cifar-10"),
            CIFAR10_URL,
            CIFAR10_MD5,
            download_if_missing,
            "CIFAR-10",
        )
        located = ("archive", archive)

    kind, location = located
    if kind == "dir":
        raws, wheres = {}, {}
        for member in (*batches, "batches.meta"):
            path = os.path.join(location, member)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    raws[member] = f.read()
                wheres[member] = path
    else:
        raws = _read_cifar_members(
            location, batches, optional=("batches.meta",)
        )
        wheres = {m: f"{location}:{_CIFAR10_FOLDER}/{m}" for m in raws}

    images, targets = [], []
    for member in batches:
        x, y = _parse_batch(_unpickle_batch(raws[member], wheres[member]),
                            wheres[member])
        images.append(x)
        targets.append(y)
    images = images[0] if len(images) == 1 else np.concatenate(images)
    target = targets[0] if len(targets) == 1 else np.concatenate(targets)

    target_names = _CIFAR10_CLASSES
    if "batches.meta" in raws:
        meta = _unpickle_batch(raws["batches.meta"], wheres["batches.meta"])
        names = meta.get("label_names")
        if names is not None:
            names = [n.decode("latin1") if isinstance(n, bytes) else str(n)
                     for n in names]
            if len(names) != 10:
                raise ValueError(
                    f"{wheres['batches.meta']}: {len(names)} label names, "
                    "expected 10."
                )
            target_names = tuple(names)

    return _finish(
        _to_float01(images),
        target,
        images_shape=images.shape[1:],
        target_names=target_names,
        feature_names=_image_feature_names(images.shape[1:]),
        descr=_CIFAR10_DESCR,
        return_X_y=return_X_y,
        as_frame=as_frame,
        filenames=[wheres[m] for m in batches],
    )


# ---------------------------------------------------------------------------
# MNIST-1D.
# ---------------------------------------------------------------------------


def load_mnist1d(
    *,
    subset="train",
    n_samples=None,
    random_state=0,
    return_X_y=False,
    as_frame=False,
):
    """Generate the MNIST-1D dataset locally (classification).

    Runs ``mnist1d.data.make_dataset`` from the optional ``mnist1d`` package
    with its default generation arguments, except for the number of samples
    and the seed. Nothing is downloaded (the package's ``download=True``
    path is never used). ``n_samples`` examples are generated and split 80%
    / 20% into train and test, as in the reference dataset; with
    ``n_samples=5000`` and ``random_state=42`` the arguments equal the
    package's defaults.

    ``make_dataset`` seeds NumPy's and Python's global random generators;
    their states are saved and restored around the call, so calling this
    function does not disturb the caller's global randomness.

    Generation is slow-ish (about 5 ms per example on one CPU core, so the
    default 5,000 examples take tens of seconds).

    Parameters
    ----------
    subset : {'train', 'test', 'all'}, default='train'
        Which split to return: the first 80% of the generated examples, the
        last 20%, or all of them (train first).
    n_samples : int, default=None
        Total number of examples to generate (train and test together); a
        positive multiple of 10 (the same number per class). None means the
        package default, 5,000 (4,000 train, 1,000 test).
    random_state : int, RandomState instance or None, default=0
        Seed of the generator. An int in [0, 2**32 - 1] is passed on as the
        seed, so the same int always gives the same dataset. A RandomState
        instance or None draws the seed from it (or from fresh entropy).
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame, ``target`` a pandas Series
        named ``'class'``, and ``frame`` a DataFrame with both.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : ndarray of shape (n, 40), dtype float32, or DataFrame
            The signals, standardised over the whole generated set (zero
            mean, unit variance; *not* scaled to [0, 1]).
        target : ndarray of shape (n,), dtype int64, or Series
            Class labels 0-9.
        frame : DataFrame of shape (n, 41) or None
            Only when ``as_frame=True``: data and target together.
        t : ndarray of shape (40,), dtype float32
            The sampling positions of the 40 features, as returned by
            ``make_dataset``.
        target_names : ndarray of str of shape (10,)
            ``'0'`` ... ``'9'``.
        feature_names : list of str of length 40
            ``'x_0'`` ... ``'x_39'``.
        DESCR : str
            Description of the dataset: source, size, licence, citation.

    (data, target) : tuple if ``return_X_y`` is True
        The ``data`` and ``target`` described above.

    Raises
    ------
    ImportError
        If the ``mnist1d`` package is not installed.
    ValueError
        If ``subset`` or ``n_samples`` is invalid.

    See Also
    --------
    sklottery.reproduce.run : Experiment ``'mnist1d'``: ticket vs random mask.

    References
    ----------
    .. [1] Greydanus, S. and Kobak, D. (2024). Scaling Down Deep Learning with
       MNIST-1D. ICML. arXiv:2011.14439.

    Examples
    --------
    >>> from sklottery.datasets import load_mnist1d
    >>> X, y = load_mnist1d(n_samples=100, return_X_y=True)  # doctest: +SKIP
    >>> X.shape, X.dtype  # doctest: +SKIP
    ((80, 40), dtype('float32'))
    """
    splits = _check_subset(subset)
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise ImportError(
            "load_mnist1d needs the optional 'mnist1d' package, which could "
            f"not be imported ({exc}). Install it with `pip install mnist1d` "
            "(or `pip install sklottery[mnist1d]`)."
        ) from exc

    args = get_dataset_args()
    if n_samples is not None:
        if (
            not isinstance(n_samples, numbers.Integral)
            or isinstance(n_samples, bool)
            or n_samples < 10
            or n_samples % 10
        ):
            raise ValueError(
                "n_samples must be a positive multiple of 10 (the same number "
                f"of examples per class), got {n_samples!r}."
            )
        args.num_samples = int(n_samples)
    if isinstance(random_state, numbers.Integral) and not isinstance(
        random_state, bool
    ):
        seed = int(random_state)
        if not 0 <= seed < 2**32:
            raise ValueError(
                f"random_state must be in [0, 2**32 - 1], got {random_state}."
            )
    else:
        seed = int(check_random_state(random_state).randint(2**31 - 1))
    args.seed = seed

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        generated = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)

    parts = {
        "train": (generated["x"], generated["y"]),
        "test": (generated["x_test"], generated["y_test"]),
    }
    data = np.concatenate([parts[s][0] for s in splits]).astype(np.float32)
    target = np.concatenate([parts[s][1] for s in splits]).astype(np.int64)
    return _finish(
        np.ascontiguousarray(data),
        target,
        images_shape=None,
        target_names=_MNIST_CLASSES,
        feature_names=[f"x_{i}" for i in range(data.shape[1])],
        descr=_MNIST1D_DESCR,
        return_X_y=return_X_y,
        as_frame=as_frame,
        t=np.asarray(generated["t"], dtype=np.float32),
    )
