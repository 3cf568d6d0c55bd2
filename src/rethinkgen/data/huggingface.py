"""Hugging Face datasets (``pip install 'rethinkgen[hf]'``): ``hf:OWNER/NAME`` on the Hub, or ``hf:PATH``, a
folder written by ``DatasetDict.save_to_disk`` or holding parquet files (``train-*.parquet``, ``test-*.parquet``).

The image and label columns and the train and test splits are detected, or set by the config's
``image_column``, ``label_column``, ``train_split`` and ``test_split``. The dataset is decoded once into the
in-memory ``Dataset`` that ``from_arrays`` builds (the same checks, the same SHA-256, which a run records as
``data_hash`` and its run id covers) and cached as an ``.npz`` file under ``~/.cache/rethinkgen/huggingface``
(or ``$RETHINKGEN_HF_CACHE``), keyed by the source, the options and the dataset's fingerprints (for a
folder: its files' names, sizes and modification times). Offline, the Hub's datasets come from the
library's own cache: set ``HF_DATASETS_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from pathlib import Path

import numpy as np

from rethinkgen.data import arrays
from rethinkgen.data.dataset import Dataset
from rethinkgen.errors import RethinkgenError, raised, shown
from rethinkgen.store import atomic_write, atomic_write_text

PREFIX = "hf:"
OPTIONS = ("image_column", "label_column", "train_split", "test_split")
CACHE_ENV = "RETHINKGEN_HF_CACHE"
MISSING = "Hugging Face datasets need the hf extra: pip install 'rethinkgen[hf]'"
HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
SPLIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
IMAGE_NAMES = ("image", "img", "images", "pixel_values")
LABEL_NAMES = ("label", "labels", "fine_label", "target")
TEST_SPLITS = ("test", "validation", "valid", "val")
BATCH = 1024  # images decoded at once

_hashes: dict[tuple, str] = {}  # (source, options, folder files) -> data hash, so a run id decodes nothing twice


def is_hf(dataset) -> bool:
    """Whether ``dataset`` (a config's ``dataset``) names a Hugging Face dataset (``hf:...``)."""
    return isinstance(dataset, str) and dataset.startswith(PREFIX)


def options_of(config) -> dict:
    """The config's Hugging Face options (``image_column``, ...) that are set."""
    return {name: getattr(config, name) for name in OPTIONS if getattr(config, name, None) is not None}


def check(dataset: str, options: dict) -> None:
    """Refuse a malformed ``hf:`` name or option, and options given for any other dataset."""
    given = [name for name in OPTIONS if options.get(name) is not None]
    if not is_hf(dataset):
        if given:
            raise RethinkgenError(f"{given[0]} applies only to Hugging Face datasets (hf:NAME), not {shown(dataset)}")
        return
    target = dataset[len(PREFIX):]
    if not (_is_path(target) or HUB_NAME.fullmatch(target)):
        raise RethinkgenError(f"dataset {shown(dataset)}: after hf: give OWNER/NAME on the Hub or the path of a "
                              f"folder (saved with save_to_disk, or of parquet files)")
    for name in given:
        value = options[name]
        pattern = SPLIT_NAME if name.endswith("split") else None
        if not value or len(value) > 128 or not value.isprintable() or (pattern and not pattern.fullmatch(value)):
            raise RethinkgenError(f"{name} {shown(value)} must be a {'split' if pattern else 'column'} name")


def resolved_hash(dataset: str, options: dict, data_hash: str | None) -> str:
    """The ``data_hash`` a run on ``dataset`` has: ``data_hash`` when given, else the SHA-256 of the decoded
    arrays (read from the cache's record when the dataset was decoded before)."""
    if data_hash is not None:
        return data_hash
    return load_hf(dataset, options, want_data=False)[1]


def load_hf(dataset: str, options: dict | None = None, data_hash: str | None = None,
            want_data: bool = True) -> tuple[Dataset | None, str]:
    """The ``Dataset`` of ``hf:...`` and its SHA-256, decoded or read from the cache.

    Args:
        dataset: ``hf:OWNER/NAME`` or ``hf:PATH``.
        options: ``image_column``, ``label_column``, ``train_split``, ``test_split`` (each optional).
        data_hash: the SHA-256 a run recorded; a dataset that now hashes otherwise is refused.
        want_data: False returns ``(None, hash)``, without reading the arrays when the cache has a record.
    """
    options = {k: v for k, v in (options or {}).items() if v is not None}
    check(dataset, options)
    if importlib.util.find_spec("datasets") is None:
        raise RethinkgenError(MISSING)
    target = dataset[len(PREFIX):]
    files = _folder_files(Path(target).expanduser()) if _is_path(target) else None
    memo = (dataset, json.dumps(options, sort_keys=True), json.dumps(files))
    if not want_data and memo in _hashes:
        return None, _hashes[memo]
    source = _open(target, files is not None)
    key = _cache_key(dataset, options, source, files)
    npz, record = cache_dir() / f"{key}.npz", cache_dir() / f"{key}.json"
    cached = _read_record(record) if npz.exists() else None
    if cached is not None and not want_data:
        result = None, cached
    elif cached is not None:
        loaded = arrays.read_npz(npz)[0]
        data = Dataset(dataset, loaded.x_train, loaded.y_train, loaded.x_test, loaded.y_test, loaded.classes)
        result = data, arrays.arrays_sha256(data)
    else:
        data = decode(dataset, source, options)
        result = data, arrays.arrays_sha256(data)
        _write_cache(npz, record, data, result[1], dataset, options)
    _hashes[memo] = result[1]
    if data_hash is not None and result[1] != data_hash:
        raise RethinkgenError(f"{dataset} has changed: its arrays now hash to {result[1][:12]}..., the run was set "
                              f"up on {data_hash[:12]}...; set it up again (a new run id)")
    return result


def cache_dir() -> Path:
    """Where decoded datasets are kept: ``$RETHINKGEN_HF_CACHE``, else ``~/.cache/rethinkgen/huggingface``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "rethinkgen" / "huggingface").expanduser()


def decode(name: str, source, options: dict) -> Dataset:
    """Decode the train and test splits of ``source`` (a ``DatasetDict``) into a checked ``Dataset``."""
    splits = list(source.keys())
    train_split = _split(splits, options.get("train_split"), ("train",), "train_split", name)
    test_split = _split(splits, options.get("test_split"), TEST_SPLITS, "test_split", name)
    if train_split == test_split:
        raise RethinkgenError(f"{name}: train_split and test_split are both {shown(train_split)}; give two splits")
    features = source[train_split].features
    image_column = options.get("image_column") or _image_column(features, name)
    label_column = options.get("label_column") or _label_column(features, image_column, name)
    for column in (image_column, label_column):
        for split in (train_split, test_split):
            if column not in source[split].column_names:
                raise RethinkgenError(f"{name}: split {split!r} has no column {shown(column)}; its columns: "
                                      f"{', '.join(source[split].column_names)}")
    classes, to_index = _label_names(features[label_column], [source[s][label_column] for s in (train_split, test_split)])
    found = {}
    for split, key in ((train_split, "train"), (test_split, "test")):
        part = source[split]
        found[f"x_{key}"] = _images(part, image_column, f"{name} {split}")
        found[f"y_{key}"] = to_index(part[label_column])
    is_image = type(features[image_column]).__name__ == "Image"
    return arrays._dataset(name, found, classes, True if is_image else None, where=f"{name}: ")


# ---------------------------------------------------------------------------------------------- opening
def _is_path(target: str) -> bool:
    return target.startswith(("/", "./", "../", "~")) or Path(target).expanduser().is_dir()


def _folder_files(folder: Path) -> list:
    """Every file under ``folder``, as (relative path, size, modification time): what a folder dataset is."""
    if not folder.is_dir():
        raise RethinkgenError(f"dataset folder {folder} does not exist (or is not a folder)")
    listing = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            stat = path.stat()
            listing.append([str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns])
    return listing


def _open(target: str, local: bool):
    """The ``DatasetDict`` of a Hub name or a local folder; one-line errors."""
    import datasets  # the optional hf extra

    datasets.disable_progress_bars()
    folder = Path(target).expanduser()
    try:
        if not local:
            return datasets.load_dataset(target)
        if (folder / "dataset_dict.json").exists():
            return datasets.load_from_disk(str(folder))
        if (folder / "state.json").exists():
            raise RethinkgenError(f"{folder} holds one split (Dataset.save_to_disk); save a DatasetDict with a train "
                                  f"and a test split")
        if not any(folder.rglob("*.parquet")):
            raise RethinkgenError(f"{folder} holds no dataset: neither a folder written by DatasetDict.save_to_disk "
                                  f"(dataset_dict.json) nor parquet files")
        return datasets.load_dataset("parquet", data_dir=str(folder))
    except RethinkgenError:
        raise
    except Exception as error:  # not found, offline without a cached copy, unreadable files
        offline = " (offline: HF_DATASETS_OFFLINE is set)" if os.environ.get("HF_DATASETS_OFFLINE") else ""
        raise RethinkgenError(f"cannot open Hugging Face dataset {shown(target)}{offline}: {raised(error)}") from None


def _cache_key(dataset: str, options: dict, source, files) -> str:
    identity = {"dataset": dataset, "options": options, "files": files, "version": 1,
                "fingerprints": {split: getattr(part, "_fingerprint", None) for split, part in source.items()}}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def _read_record(path: Path) -> str | None:
    try:
        value = json.loads(path.read_text()).get("data_hash")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and arrays.HASH_PATTERN.fullmatch(value) else None


def _write_cache(npz: Path, record: Path, data: Dataset, data_hash: str, dataset: str, options: dict) -> None:
    npz.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(npz, lambda handle: np.savez(handle, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
                                              y_test=data.y_test, classes=np.array(data.classes, dtype=str)))
    atomic_write_text(record, json.dumps({"dataset": dataset, "options": options, "data_hash": data_hash}, indent=1))


# ---------------------------------------------------------------------------------------------- columns
def _split(splits: list, chosen: str | None, candidates: tuple, what: str, name: str) -> str:
    if chosen is not None:
        if chosen not in splits:
            raise RethinkgenError(f"{name} has no split {shown(chosen)} ({what}); its splits: {', '.join(splits)}")
        return chosen
    for candidate in candidates:
        if candidate in splits:
            return candidate
    raise RethinkgenError(f"{name}: no split named {' or '.join(candidates)}; its splits: {', '.join(splits)}; "
                          f"set {what}")


def _image_column(features, name: str) -> str:
    kinds = {column: type(feature).__name__ for column, feature in features.items()}
    images = [column for column, kind in kinds.items() if kind in ("Image", "Array2D", "Array3D")]
    named = [column for column in IMAGE_NAMES if column in kinds]
    found = images if len(images) == 1 else named[:1]
    if not found:
        raise RethinkgenError(f"{name}: cannot tell which column holds the images (columns: {', '.join(kinds)}); "
                              f"set image_column")
    return found[0]


def _label_column(features, image_column: str, name: str) -> str:
    kinds = {column: type(feature).__name__ for column, feature in features.items() if column != image_column}
    labelled = [column for column, kind in kinds.items() if kind == "ClassLabel"]
    named = [column for column in LABEL_NAMES if column in kinds]
    found = labelled if len(labelled) == 1 else list(kinds) if len(kinds) == 1 else \
        [c for c in named if not labelled or c in labelled][:1]
    if not found:
        raise RethinkgenError(f"{name}: cannot tell which column holds the labels (columns: {', '.join(kinds)}); "
                              f"set label_column")
    return found[0]


def _label_names(feature, columns: list):
    """The class names and a function turning a label column into integers 0..K-1: a ClassLabel's names,
    integer labels as they are (names "0".."K-1"), or text labels numbered in sorted order."""
    if type(feature).__name__ == "ClassLabel":
        return list(feature.names), lambda values: np.asarray(list(values))
    dtype = getattr(feature, "dtype", "")
    if dtype in ("string", "large_string"):
        names = sorted({str(v) for column in columns for v in column})
        index = {label: k for k, label in enumerate(names)}
        return names, lambda values: np.array([index[str(v)] for v in values], dtype=np.int64)
    return None, lambda values: np.asarray(list(values))


def _images(part, column: str, where: str) -> np.ndarray:
    """The split's images as one array, decoded ``BATCH`` at a time."""
    formatted = part.with_format("numpy", columns=[column])
    batches = []
    for start in range(0, len(part), BATCH):
        try:
            batch = formatted[start:start + BATCH][column]
        except Exception as error:  # an image that cannot be decoded
            raise RethinkgenError(f"{where}: cannot decode the images at rows {start}..: {raised(error)}") from None
        if batch.dtype == object:
            shapes = sorted({np.shape(image) for image in batch})[:3]
            raise RethinkgenError(f"{where}: the images differ in size or channels ({', '.join(map(str, shapes))}); "
                                  f"resize them to one size first")
        batches.append(batch)
    if not batches:
        raise RethinkgenError(f"{where}: the split is empty")
    if len({b.shape[1:] for b in batches}) > 1:
        raise RethinkgenError(f"{where}: the images differ in size or channels; resize them to one size first")
    return np.concatenate(batches)
