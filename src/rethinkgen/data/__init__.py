"""Data sources: ``load(name, **options)`` returns a ``Dataset`` held in memory as uint8 arrays, or,
for ``imagefolder``, ``ImageFiles``: file names and labels, whose images are streamed while training."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rethinkgen.data import arrays, builtin, cifar, huggingface, idx, imagefolder
from rethinkgen.data.arrays import from_arrays, load_npz
from rethinkgen.data.dataset import Dataset
from rethinkgen.data.imagefolder import ImageFiles
from rethinkgen.errors import RethinkgenError, choice_error

__all__ = ["Dataset", "ImageFiles", "load", "load_for_run", "SOURCES", "source_status", "from_arrays", "load_npz"]


@dataclass(frozen=True)
class Source:
    """A named data source: its loader and what ``rethinkgen list datasets`` says about it."""

    name: str
    description: str
    load: Callable[..., Dataset | ImageFiles]
    locate: Callable[..., Path | None] | None = None  # None: needs no files


def _idx_source(name: str, description: str) -> Source:
    return Source(name, description,
                  lambda data_dir=None, download=False: idx.load_idx_dataset(name, data_dir, download),
                  lambda data_dir=None: idx.locate(name, data_dir))


def _cifar_source(name: str, description: str) -> Source:
    return Source(name, description,
                  lambda data_dir=None, download=False: cifar.load_cifar(name, data_dir, download),
                  lambda data_dir=None: cifar.locate(name, data_dir))


SOURCES: dict[str, Source] = {s.name: s for s in [
    Source("digits", "scikit-learn's 8x8 handwritten digits, bundled: always available offline",
           builtin.load_digits),
    _idx_source("fashion-mnist", "Fashion-MNIST IDX files (Debian: dataset-fashion-mnist)"),
    _idx_source("mnist", "MNIST IDX files"),
    _cifar_source("cifar10", "CIFAR-10 python batches (cifar-10-batches-py)"),
    _cifar_source("cifar100", "CIFAR-100 python batches (cifar-100-python), fine labels"),
    Source("synthetic", "procedural class templates plus noise, any shape; for tests", builtin.load_synthetic),
    Source("imagefolder", "ImageNet-style folders train/<class>/*.JPEG and val/<class>/*.JPEG, streamed",
           imagefolder.load_imagefolder, imagefolder.locate),
]}


def load(name: str, **options: object) -> Dataset | ImageFiles:
    """Load dataset ``name`` with its options (``data_dir``, ``download`` for file-based sources).

    Args:
        name: a data source (``rethinkgen list datasets``).
        **options: the source's options, e.g. ``data_dir`` and ``download`` for file-based sources; one it does
            not take is refused.
    """
    if name not in SOURCES:
        raise choice_error("dataset", name, SOURCES)
    loader = SOURCES[name].load
    allowed = list(inspect.signature(loader).parameters)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise RethinkgenError(
            f"dataset {name!r} does not take option(s) {', '.join(unknown)}; allowed: {', '.join(allowed) or 'none'}")
    return loader(**options)


def source_status(data_dir=None) -> list[dict]:
    """For each source: whether it was found, where, and its shape (loading it to check)."""
    rows = []
    for source in SOURCES.values():
        row = {"name": source.name, "description": source.description, "found": True, "where": "built in",
               "shape": ""}
        if source.locate is not None:
            where = source.locate(data_dir=data_dir)
            row.update(found=where is not None, where=str(where) if where else "not found")
        if row["found"]:
            try:
                dataset = source.load(data_dir=data_dir) if source.locate else source.load()
                row["shape"] = dataset.describe().split(": ", 1)[1]
            except RethinkgenError as error:
                row.update(found=False, shape=f"unreadable: {error}")
        rows.append(row)
    return rows


def load_for_run(name: str, data_dir: str | Path | None = None, download: bool = False, image_size: int | None = None,
                 data_hash: str | None = None, hf_options: dict | None = None):
    """Load ``name`` with a run's data settings: only file-based sources take a folder and ``download``,
    only ``imagefolder`` takes an image size (any other source refuses it, naming the option). An ``.npz``
    path is read with ``load_npz``, refused if its bytes no longer hash to ``data_hash``; a Hugging Face
    dataset (``hf:...``) with ``huggingface.load_hf`` and its ``hf_options`` (columns and splits).

    Args:
        name: the run's dataset: a source's name, an ``.npz`` path or ``hf:...``.
        data_dir: the folder holding the dataset's files.
        download: download missing files.
        image_size: ``imagefolder`` only: the decoded images' side.
        data_hash: the SHA-256 an ``.npz`` file's bytes must have (None: not checked).
        hf_options: a Hugging Face dataset's columns and splits.
    """
    if huggingface.is_hf(name):
        return huggingface.load_hf(name, hf_options, data_hash)[0]
    if arrays.is_own(name):
        arrays.check_data_hash(name, data_hash)  # arrays:NAME cannot be loaded: it says how to pass them
        return load_npz(name, data_hash)
    if name not in SOURCES:
        raise choice_error("dataset", name, SOURCES)
    options = {"data_dir": data_dir, "download": download} if SOURCES[name].locate is not None else {}
    if image_size is not None:
        options["image_size"] = image_size
    return load(name, **options)
