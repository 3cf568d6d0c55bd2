"""Your own data: NumPy arrays in Python (``from_arrays``) and ``.npz`` files (``load_npz``).

A run on your data names it in its config as ``dataset``: the path of an ``.npz`` file, or
``arrays:NAME`` for arrays handed to ``train(config, dataset=...)``. Either way the config's
``data_hash`` holds the SHA-256 of the data (of the file's bytes, or of the arrays), and the run id
covers it: different data never reuses a finished run.

An ``.npz`` file is untrusted: it is read with ``allow_pickle=False``, its sizes are checked against
``MAX_BYTES`` before any array is decompressed, and it must hold exactly the arrays ``x_train``,
``y_train``, ``x_test``, ``y_test`` (and, optionally, ``classes``, a string per class).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from rethinkgen.data.dataset import Dataset
from rethinkgen.errors import RethinkgenError, shown

ARRAYS_PREFIX = "arrays:"  # config.dataset of in-memory arrays: arrays:NAME
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
HASH_PATTERN = re.compile(r"[0-9a-f]{64}")
REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL_KEYS = ("classes",)
MAX_BYTES = 2**34  # 16 GiB: the most an .npz file, or its arrays once decompressed, may take
MAX_CLASSES = 100_000

_file_hashes: dict[tuple, str] = {}  # (path, size, mtime, inode) -> sha256, so a run id hashes a file once


def is_npz(dataset: str) -> bool:
    """Whether ``dataset`` (a config's ``dataset``) names an ``.npz`` file."""
    return isinstance(dataset, str) and dataset.lower().endswith(".npz")


def is_in_memory(dataset: str) -> bool:
    """Whether ``dataset`` names arrays handed to ``train(config, dataset=...)`` (``arrays:NAME``)."""
    return isinstance(dataset, str) and dataset.startswith(ARRAYS_PREFIX)


def is_own(dataset: str) -> bool:
    """Whether ``dataset`` is the user's own data (an ``.npz`` path, ``arrays:NAME`` or a Hugging Face
    dataset ``hf:...``) rather than a source."""
    return is_npz(dataset) or is_in_memory(dataset) or (isinstance(dataset, str) and dataset.startswith("hf:"))


def check_data_hash(dataset: str, data_hash: str | None) -> None:
    """Refuse a ``data_hash`` that is not a SHA-256, given for a built-in source, or missing for arrays."""
    if data_hash is not None and not (isinstance(data_hash, str) and HASH_PATTERN.fullmatch(data_hash)):
        raise RethinkgenError(f"data_hash {shown(data_hash)} must be a SHA-256: 64 lowercase hex digits")
    if data_hash is not None and not is_own(dataset):
        raise RethinkgenError(f"data_hash applies to an .npz file or in-memory arrays or a Hugging Face dataset, "
                              f"not to dataset {shown(dataset)}")
    if is_in_memory(dataset):
        name = dataset[len(ARRAYS_PREFIX):]
        if not NAME_PATTERN.fullmatch(name):
            raise RethinkgenError(f"dataset {shown(dataset)}: the name after {ARRAYS_PREFIX!r} must be 1-64 letters, "
                                  f"digits, '.', '_' or '-'")
        if data_hash is None:
            raise RethinkgenError(f"dataset {shown(dataset)} is arrays in memory: pass them with "
                                  f"train(config, dataset=from_arrays(...))")


def resolved_hash(dataset: str, data_hash: str | None) -> str | None:
    """The ``data_hash`` a run on ``dataset`` has: the file's SHA-256 for an ``.npz`` (refusing a file that
    changed since ``data_hash`` was taken), ``data_hash`` itself otherwise."""
    if not is_npz(dataset):
        return data_hash
    current = file_sha256(dataset)
    if data_hash is not None and data_hash != current:
        raise RethinkgenError(f"{dataset} has changed: its SHA-256 is now {current[:12]}..., the run was set up on "
                              f"{data_hash[:12]}...; set it up again (a new run id) or restore the file")
    return current


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, remembered while the file's size and modification time stay the same."""
    try:
        stat = os.stat(path)
    except OSError as error:
        raise RethinkgenError(f"cannot read dataset file {path}: {error.strerror or error}") from None
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _file_hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _file_hashes[key] = digest.hexdigest()
    return _file_hashes[key]


def arrays_sha256(dataset: Dataset) -> str:
    """The SHA-256 of a dataset's four arrays (shape, type and bytes) and its class names."""
    digest = hashlib.sha256()
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\n".join(dataset.classes).encode())
    return digest.hexdigest()


def from_arrays(x_train: ArrayLike, y_train: ArrayLike, x_test: ArrayLike, y_test: ArrayLike, name: str = "arrays",
                classes: Sequence[str] | None = None, channels_last: bool | None = None) -> Dataset:
    """A ``Dataset`` from your arrays, checked and converted to the toolkit's uint8 ``[N, C, H, W]``.

    Train on it with ``train(config, dataset=...)`` (also ``train_ensemble``, ``run_sweep``).

    Args:
        x_train: training images, ``[N, H, W]`` (one channel), ``[N, H, W, C]`` or ``[N, C, H, W]``;
            uint8 0..255, or float in [0, 1] (scaled by 255) or in [0, 255], rounded to uint8.
        y_train: training labels, integers 0..K-1, one per image.
        x_test: test images, shaped as the training images.
        y_test: test labels, integers 0..K-1.
        name: what the data is called: 1-64 letters, digits, '.', '_' or '-' (runs record it as
            ``arrays:NAME``).
        classes: a name per class (default: "0".."K-1", with K the largest label plus one).
        channels_last: whether 4-d images are ``[N, H, W, C]``; default: when the last axis has at most 4
            entries and the second more than 4.

    >>> data = from_arrays(x_train, y_train, x_test, y_test, name="scans")
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise RethinkgenError(f"name {shown(name)} must be 1-64 letters, digits, '.', '_' or '-'")
    return _dataset(name, {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
                    classes, channels_last, where=f"{name}: ")


def read_npz(path: str | Path) -> tuple[Dataset, str]:
    """The dataset in an ``.npz`` file and the SHA-256 of the bytes it was read from; one-line errors naming the file."""
    path = Path(path)
    where = f"{path}: "
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise RethinkgenError(f"{where}{size} bytes is more than the {MAX_BYTES} an .npz file may have")
        raw = path.read_bytes()
    except OSError as error:
        raise RethinkgenError(f"cannot read dataset file {path}: {error.strerror or error}") from None
    sha256 = hashlib.sha256(raw).hexdigest()
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        raise RethinkgenError(f"{where}not an .npz file (not a zip archive of .npy arrays)") from None
    keys = [member.filename.removesuffix(".npy") for member in members]
    unknown = sorted(set(keys) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    missing = [key for key in REQUIRED_KEYS if key not in keys]
    if unknown or missing or len(keys) != len(set(keys)):
        found = ", ".join(shown(key) for key in keys[:8]) or "none"
        raise RethinkgenError(f"{where}holds the arrays {found}; an .npz dataset holds exactly "
                              f"{', '.join(REQUIRED_KEYS)} (and optionally classes)")
    unpacked = sum(member.file_size for member in members)
    if unpacked > MAX_BYTES:
        raise RethinkgenError(f"{where}its arrays take {unpacked} bytes once decompressed, more than {MAX_BYTES}")
    arrays = {}
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            for key in keys:
                arrays[key] = npz[key]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise RethinkgenError(f"{where}array {key!r} holds Python objects; only numeric arrays (and strings "
                                  f"for classes) are read") from None
        raise RethinkgenError(f"{where}array {key!r} cannot be read ({str(error)[:120]})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise RethinkgenError(f"{where}array {key!r} cannot be read ({type(error).__name__})") from None
    classes = arrays.pop("classes", None)
    if classes is not None and (classes.ndim != 1 or classes.dtype.kind not in "U"):
        raise RethinkgenError(f"{where}classes must be a 1-d array of strings, got {classes.dtype} {classes.shape}")
    dataset = _dataset(str(path), arrays, None if classes is None else [str(c) for c in classes], None, where)
    return dataset, sha256


def load_npz(path: str | Path, data_hash: str | None = None) -> Dataset:
    """The dataset in an ``.npz`` file; with ``data_hash``, refuses a file whose bytes no longer hash to it."""
    dataset, sha256 = read_npz(path)
    if data_hash is not None and sha256 != data_hash:
        raise RethinkgenError(f"{path} has changed: its SHA-256 is now {sha256[:12]}..., the run was set up on "
                              f"{data_hash[:12]}...; set it up again (a new run id) or restore the file")
    return dataset


# ---------------------------------------------------------------------------------------------- checks
def _dataset(name: str, arrays: dict, classes, channels_last: bool | None, where: str) -> Dataset:
    images = {split: _images(arrays[f"x_{split}"], f"x_{split}", channels_last, where) for split in ("train", "test")}
    labels = {split: _labels(arrays[f"y_{split}"], f"y_{split}", len(images[split]), where)
              for split in ("train", "test")}
    if images["train"].shape[1:] != images["test"].shape[1:]:
        raise RethinkgenError(f"{where}training images {images['train'].shape[1:]} and test images "
                              f"{images['test'].shape[1:]} (C, H, W) differ in shape")
    top = int(max(labels["train"].max(), labels["test"].max()))
    if classes is None:
        classes = [str(k) for k in range(top + 1)]
    classes = tuple(str(c) for c in classes)
    if len(classes) < 2 or len(classes) > MAX_CLASSES:
        raise RethinkgenError(f"{where}{len(classes)} classes; a dataset needs 2..{MAX_CLASSES}")
    if top >= len(classes):
        raise RethinkgenError(f"{where}label {top} is outside 0..{len(classes) - 1} ({len(classes)} classes)")
    return Dataset(name, images["train"], labels["train"], images["test"], labels["test"], classes)


def _images(x, key: str, channels_last: bool | None, where: str) -> np.ndarray:
    x = _array(x, key, where)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        last = channels_last if channels_last is not None else (x.shape[3] <= 4 < x.shape[1])
        if last:
            x = x.transpose(0, 3, 1, 2)
    else:
        raise RethinkgenError(f"{where}{key} has shape {x.shape}; images are [N, H, W], [N, H, W, C] or [N, C, H, W]")
    if len(x) == 0 or 0 in x.shape:
        raise RethinkgenError(f"{where}{key} is empty (shape {x.shape})")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise RethinkgenError(f"{where}{key} holds NaN or infinite values")
        low, high = float(x.min()), float(x.max())
        if low < 0 or high > 255:
            raise RethinkgenError(f"{where}{key} ranges over [{low:g}, {high:g}]; float images lie in [0, 1] or [0, 255]")
        scaled = x * 255.0 if high <= 1.0 else x
        return np.ascontiguousarray(np.round(scaled).astype(np.uint8))
    if x.dtype.kind in "iu":
        if x.min() < 0 or x.max() > 255:
            raise RethinkgenError(f"{where}{key} ranges over [{x.min()}, {x.max()}]; integer images lie in 0..255")
        return np.ascontiguousarray(x.astype(np.uint8))
    raise RethinkgenError(f"{where}{key} has type {x.dtype}; images are uint8 or float")


def _labels(y, key: str, n: int, where: str) -> np.ndarray:
    y = _array(y, key, where)
    if y.ndim != 1 or len(y) != n:
        raise RethinkgenError(f"{where}{key} has shape {y.shape}; it needs one label per image: [{n}]")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise RethinkgenError(f"{where}{key} holds NaN or infinite values")
        if not (y == np.round(y)).all():
            raise RethinkgenError(f"{where}{key} holds non-integer labels; labels are integers 0..K-1")
    elif y.dtype.kind not in "iu":
        raise RethinkgenError(f"{where}{key} has type {y.dtype}; labels are integers 0..K-1")
    if y.min() < 0:
        raise RethinkgenError(f"{where}{key} holds the label {y.min():g}; labels are integers 0..K-1")
    return y.astype(np.int64)


def _array(value, key: str, where: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as error:  # a tensor on a GPU, a ragged list
        raise RethinkgenError(f"{where}{key} is not an array ({type(error).__name__}: {str(error)[:80]})") from None
    if array.dtype.kind not in "iuf":
        raise RethinkgenError(f"{where}{key} has type {array.dtype}; only numeric arrays are accepted")
    return array
