"""CIFAR-10 and CIFAR-100 in the standard python-batches format.

The batches are pickles. They are read by a restricted unpickler that builds only what the format holds
(dicts, lists, strings, bytes, numbers and numpy arrays) and refuses any other global, so a hostile file
cannot run code: it is refused with one line naming the file and what it asked for.
"""

from __future__ import annotations

import codecs
import importlib
import pickle
import tarfile
from pathlib import Path

import numpy as np

from rethinkgen.data.dataset import Dataset
from rethinkgen.data.download import cache_root, check_folder, fetch
from rethinkgen.errors import RethinkgenError

IMAGE_BYTES = 3 * 32 * 32

SOURCES = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": ("batches.meta", b"label_names"),
        "labels_key": b"labels",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": ("meta", b"fine_label_names"),
        "labels_key": b"fine_labels",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
    },
}


def _numpy_function(module: str, name: str):
    """``module.name`` of the installed numpy (numpy 2 keeps numpy.core's functions in numpy._core)."""
    for candidate in (module, module.replace("numpy._core", "numpy.core"), module.replace("numpy.core", "numpy._core")):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {module}.{name}")


# What a CIFAR python batch may ask the unpickler for: numpy's array reconstruction (written as numpy.core
# by numpy 1 and the original CIFAR files, as numpy._core by numpy 2; _frombuffer by pickle protocol 5,
# scalar for a numpy number) and _codecs.encode (how Python 3 writes bytes in pickle protocols 2 and 3).
ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: codecs.encode,
    **{(f"{core}.multiarray", name): (lambda name=name: _numpy_function("numpy._core.multiarray", name))
       for core in ("numpy.core", "numpy._core") for name in ("_reconstruct", "scalar")},
    **{(f"{core}.numeric", "_frombuffer"): (lambda: _numpy_function("numpy._core.numeric", "_frombuffer"))
       for core in ("numpy.core", "numpy._core")},
}


class _Refused(Exception):
    pass


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR python batches: dicts, lists, strings, bytes, numbers and numpy arrays.
    Any other global (a function to call, a class to build) is refused before anything runs."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise _Refused(f"{module}.{name}"[:100])
        return ALLOWED_GLOBALS[module, name]()


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise RethinkgenError(f"{path}: missing file")
    try:
        with open(path, "rb") as handle:
            content = _CifarUnpickler(handle, encoding="bytes").load()
    except _Refused as refused:
        raise RethinkgenError(f"{path}: not a readable CIFAR python batch: refused, as it asks for {refused} (a CIFAR "
                              f"batch holds only dicts, lists, strings, numbers and numpy arrays)") from None
    except Exception as error:  # truncated or foreign files raise many different exception types
        reason = (str(error).splitlines() or [""])[0][:120]
        raise RethinkgenError(f"{path}: not a readable CIFAR python batch ({type(error).__name__}: {reason})") from None
    if not isinstance(content, dict):
        raise RethinkgenError(f"{path}: expected a pickled dict, got {type(content).__name__}")
    return content


def _read_batches(directory: Path, names: list[str], labels_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        path = directory / name
        batch = _unpickle(path)
        if b"data" not in batch or labels_key not in batch:
            raise RethinkgenError(f"{path}: missing key 'data' or {labels_key.decode()!r}")
        data = np.asarray(batch[b"data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
            raise RethinkgenError(f"{path}: data must be uint8 [N, {IMAGE_BYTES}], got {data.dtype} {data.shape}")
        try:
            batch_labels = np.asarray(batch[labels_key], dtype=np.int64)
        except (TypeError, ValueError) as error:
            raise RethinkgenError(f"{path}: labels must be integers ({error})") from None
        if len(batch_labels) != len(data):
            raise RethinkgenError(f"{path}: {len(data)} images but {len(batch_labels)} labels")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def locate(name: str, data_dir=None) -> Path | None:
    """The batches directory: ``data_dir`` itself or its standard sub-folder, else the cache."""
    folder = SOURCES[name]["folder"]
    roots = [Path(data_dir)] if data_dir is not None else [cache_root()]
    for root in roots:
        for directory in (root, root / folder):
            if (directory / SOURCES[name]["meta"][0]).is_file():
                return directory
    return None


def download(name: str, root: Path) -> Path:
    """Fetch and extract the archive into ``root``; return the batches folder."""
    spec = SOURCES[name]
    archive = fetch(spec["url"], root / Path(spec["url"]).name, spec["md5"])
    with tarfile.open(archive) as tar:
        # the 'data' filter refuses absolute paths and links out of root; older Pythons lack it
        tar.extractall(root, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return root / spec["folder"]


def load_cifar(name: str, data_dir=None, download_missing: bool = False) -> Dataset:
    """CIFAR-10 or CIFAR-100 from its python batches.

    Args:
        name: ``cifar10`` or ``cifar100``.
        data_dir: the folder holding the batches (None: the cache and the usual places).
        download_missing: download the canonical archive when the files are not found.
    """
    spec = SOURCES[name]
    directory = locate(name, data_dir)
    if directory is None and download_missing:
        directory = download(name, Path(data_dir) if data_dir is not None else cache_root())
    if directory is None:
        where = Path(data_dir) if data_dir is not None else cache_root()
        check_folder(name, where)
        raise RethinkgenError(
            f"{name}: no {spec['meta'][0]} in {where} or {where / spec['folder']}; point --data-dir at "
            f"the extracted '{spec['folder']}' folder, or pass --download")
    meta_name, names_key = spec["meta"]
    meta = _unpickle(directory / meta_name)
    if names_key not in meta:
        raise RethinkgenError(f"{directory / meta_name}: missing key {names_key.decode()!r}")
    classes = tuple(c.decode() if isinstance(c, bytes) else str(c) for c in meta[names_key])
    x_train, y_train = _read_batches(directory, spec["train"], spec["labels_key"])
    x_test, y_test = _read_batches(directory, spec["test"], spec["labels_key"])
    return Dataset(name, x_train, y_train, x_test, y_test, classes)


def write_batch(path: Path, images: np.ndarray, labels, labels_key: bytes = b"labels") -> None:
    """Write images ``[N, 3, 32, 32]`` and labels as one python batch (used by tests and tools)."""
    with open(path, "wb") as handle:
        pickle.dump({b"data": images.reshape(len(images), -1), labels_key: list(map(int, labels))}, handle)
