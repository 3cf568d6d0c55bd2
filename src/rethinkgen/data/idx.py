"""MNIST-style IDX files (MNIST, Fashion-MNIST), gzipped or not."""

from __future__ import annotations

import functools
import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from rethinkgen.data.dataset import Dataset
from rethinkgen.data.download import cache_root, check_folder, fetch
from rethinkgen.errors import RethinkgenError

FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
UBYTE = 0x08  # the IDX type code for unsigned bytes, the only one these datasets use
MAX_IDX_BYTES = 1 << 32  # 4 GiB of data in one file; MNIST's largest holds 47 MB
READ_CHUNK = 1 << 24

SOURCES = {
    "mnist": {
        "classes": tuple(str(d) for d in range(10)),
        "url": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "md5": {
            "x_train": "f68b3c2dcbeaaa9fbdd348bbdeb94873", "y_train": "d53e105ee54ea40749a09fcbcd1e9432",
            "x_test": "9fb629c4189551a2d022fa330f9573f3", "y_test": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        "system_dirs": ["/usr/share/datasets/mnist"],
    },
    "fashion-mnist": {
        "classes": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "md5": {
            "x_train": "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "y_train": "25c81989df183df01b3e8a0aad5dffbe",
            "x_test": "bef4ecab320f06d8554ea6380940ec79", "y_test": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        # where Debian's package dataset-fashion-mnist installs the files
        "system_dirs": ["/usr/share/datasets/fashion-mnist"],
    },
}


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes with ``ndim`` dimensions, checking magic number and length.

    The array is read-only and kept for as long as the file is unchanged (same size and modification time):
    an ensemble or a sweep in one process loads its dataset once per run, and decompressing Fashion-MNIST
    costs 0.4 s each time."""
    try:
        stat = Path(path).stat()
    except OSError as error:
        raise RethinkgenError(f"{path}: cannot read ({error})") from None
    return _read_idx(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, ndim)


@functools.lru_cache(maxsize=8)
def _read_idx(path: str, size: int, mtime_ns: int, ndim: int) -> np.ndarray:
    """Read the header, then at most the bytes it promises and one more (to tell a file that is too long):
    a small .gz that expands to gigabytes costs only what its header says, and a header may not promise
    more than MAX_IDX_BYTES."""
    path = Path(path)
    header_size = 4 + 4 * ndim
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            header = handle.read(header_size)
            shape = _checked_shape(path, header, ndim)
            expected = math.prod(shape)
            body = _read_at_most(handle, expected + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise RethinkgenError(f"{path}: cannot read ({error})") from None
    if len(body) != expected:
        found = f"more than {expected}" if len(body) > expected else f"{len(body)}"
        raise RethinkgenError(
            f"{path}: {'truncated' if len(body) < expected else 'too long'}: header says {shape} = "
            f"{expected} bytes of data, file has {found}")
    array = np.frombuffer(body, dtype=np.uint8).reshape(shape)
    array.flags.writeable = False  # kept by the cache: no caller may change what the next one reads
    return array


def _read_at_most(handle, size: int) -> bytearray:
    """Up to ``size`` bytes, read in chunks: memory grows with what the file holds, not what it promises."""
    data = bytearray()
    while len(data) < size:
        chunk = handle.read(min(size - len(data), READ_CHUNK))
        if not chunk:
            break
        data += chunk
    return data


def _checked_shape(path: Path, header: bytes, ndim: int) -> tuple[int, ...]:
    """The shape an IDX header promises, after checking its magic number and total size."""
    if len(header) < 4 + 4 * ndim:
        raise RethinkgenError(f"{path}: truncated IDX header ({len(header)} bytes)")
    if header[0] != 0 or header[1] != 0 or header[2] != UBYTE or header[3] != ndim:
        raise RethinkgenError(
            f"{path}: wrong magic number 0x{header[:4].hex()}; expected 0x0000{UBYTE:02x}{ndim:02x} "
            f"(unsigned bytes, {ndim} dimensions)")
    shape = tuple(int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if math.prod(shape) > MAX_IDX_BYTES:
        raise RethinkgenError(
            f"{path}: header promises {shape} = {math.prod(shape):,} bytes of data; an IDX file may hold at most "
            f"{MAX_IDX_BYTES:,} ({MAX_IDX_BYTES >> 30} GiB)")
    return shape


def find_file(directory: Path, stem: str) -> Path | None:
    """The IDX file ``stem`` in ``directory``, plain or gzipped; None if neither is there.

    Args:
        directory: where to look.
        stem: the file's name without ``.gz``, e.g. ``train-images-idx3-ubyte``.
    """
    for candidate in (directory / stem, directory / (stem + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def candidate_dirs(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """Where to look, in order: the directory given, ``$RETHINKGEN_DATA``/the cache, the system dirs."""
    if data_dir is not None:
        return [Path(data_dir)]
    return [cache_root() / name] + [Path(d) for d in SOURCES[name]["system_dirs"]]


def locate(name: str, data_dir=None) -> Path | None:
    """The first candidate directory that holds all four files, or None."""
    for directory in candidate_dirs(name, data_dir):
        if all(find_file(directory, stem) for stem in FILES.values()):
            return directory
    return None


def download(name: str, directory: Path) -> Path:
    """Download the four IDX files of dataset ``name`` into ``directory``; returns ``directory``.

    Args:
        name: ``mnist`` or ``fashion-mnist``.
        directory: where the files go.
    """
    spec = SOURCES[name]
    for key, stem in FILES.items():
        fetch(spec["url"] + stem + ".gz", directory / (stem + ".gz"), spec["md5"][key])
    return directory


def load_idx_dataset(name: str, data_dir=None, download_missing: bool = False) -> Dataset:
    """MNIST or Fashion-MNIST from its IDX files.

    Args:
        name: ``mnist`` or ``fashion-mnist``.
        data_dir: the folder holding the files (None: the cache and the usual places).
        download_missing: download the canonical files when they are not found.
    """
    directory = locate(name, data_dir)
    if directory is None and download_missing:
        directory = download(name, Path(data_dir) if data_dir is not None else cache_root() / name)
    if directory is None:
        searched = candidate_dirs(name, data_dir)
        if data_dir is not None:
            check_folder(name, Path(data_dir))
        raise RethinkgenError(
            f"{name}: IDX files ({', '.join(FILES.values())}, optionally .gz) not found in "
            f"{', '.join(map(str, searched))}; set --data-dir or RETHINKGEN_DATA, or pass --download")
    arrays = {}
    for key, stem in FILES.items():
        arrays[key] = read_idx(find_file(directory, stem), ndim=3 if key.startswith("x") else 1)
    for split in ("train", "test"):
        n_images, n_labels = len(arrays[f"x_{split}"]), len(arrays[f"y_{split}"])
        if n_images != n_labels:
            raise RethinkgenError(
                f"{directory / FILES['x_' + split]}: {n_images} images but "
                f"{FILES['y_' + split]} has {n_labels} labels")
    classes = SOURCES[name]["classes"]
    for split in ("train", "test"):
        labels = arrays[f"y_{split}"]
        if len(labels) and labels.max() >= len(classes):
            raise RethinkgenError(
                f"{directory / FILES['y_' + split]}: label {labels.max()} outside 0..{len(classes) - 1}")
    return Dataset(
        name=name,
        x_train=arrays["x_train"][:, None].copy(), y_train=arrays["y_train"].astype(np.int64),
        x_test=arrays["x_test"][:, None].copy(), y_test=arrays["y_test"].astype(np.int64),
        classes=classes)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as an IDX file, gzipped when ``path`` ends in .gz (used by tests and tools)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, UBYTE, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    opener = gzip.open if Path(path).suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())
