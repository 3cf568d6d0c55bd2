"""The paper's randomizations (Section 2.1) as one pure, seeded function.

Two orthogonal knobs: ``label_noise`` (p in [0, 1]; 1 is random labels) and ``inputs`` (original,
shuffled-pixels, random-pixels, gaussian). Everything is drawn once from the seed, so the same seed
gives byte-identical data, and a run that resumes sees exactly the data it started with.

Choices where the paper is silent (see README, "Choices"):
- a pixel is a spatial position: its channels move together under both permutations;
- shuffled-pixels applies the one training permutation to the test images too (the paper says so);
- random-pixels and gaussian transform the test images as well, each drawn afresh per test image;
- gaussian uses the training set's per-channel mean and standard deviation, then clips to 0..255 and
  rounds to uint8, so the moments of the stored images are those of a clipped Gaussian;
- the randomization acts on raw uint8 images, before any preprocessing or standardization;
- test labels stay true unless ``corrupt_test_labels``.

A streamed source (``imagefolder``, too large to hold in memory) gets the same label noise and the same
permutation, drawn the same way over its file list; its random pixels and Gaussian images are drawn
per image from (seed, split, index) as each image is decoded (``PixelRandomization``), so an image is
identical in every epoch and whichever worker decodes it. Its Gaussian mean and standard deviation are
estimated from a sample of at most ``MOMENT_SAMPLE`` training images.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rethinkgen.choices import INPUTS
from rethinkgen.data.dataset import Dataset
from rethinkgen.data.imagefolder import ImageFiles
from rethinkgen.data.label_noise import check_mode, corrupt_labels, expected_fraction_changed
from rethinkgen.errors import DamagedFile, RethinkgenError, choice_error
from rethinkgen.store import atomic_write, atomic_write_text, read_json

# independent random streams, so that turning one knob never changes what the other draws
STREAM_TRAIN_LABELS, STREAM_TEST_LABELS, STREAM_PERMUTATION, STREAM_TRAIN_INPUTS, STREAM_TEST_INPUTS, \
    STREAM_MOMENT_SAMPLE = range(1, 7)
CHUNK = 4096  # images per chunk when drawing per-image noise, to bound memory
MOMENT_SAMPLE = 1000  # streamed sources: training images decoded to estimate the Gaussian's moments


@dataclass
class RandomizationRecord:
    """What was drawn: enough to check, explain and reuse a randomization."""

    seed: int
    label_noise: float
    inputs: str
    corrupt_test_labels: bool
    num_classes: int
    source_hash: str
    dataset_hash: str = ""
    replaced: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    changed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    test_replaced: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    test_changed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    permutation: np.ndarray | None = None
    gaussian_mean: list[float] | None = None
    gaussian_std: list[float] | None = None
    label_noise_mode: str = "uniform"
    n_test: int = 0

    ARRAYS = ("replaced", "changed", "test_replaced", "test_changed", "permutation")

    def summary(self, n_train: int) -> dict:
        """The scalar facts, including the expected and actual fraction of labels that changed."""
        k = self.num_classes
        return {
            "seed": self.seed, "label_noise": self.label_noise, "inputs": self.inputs,
            "corrupt_test_labels": self.corrupt_test_labels, "num_classes": k,
            "source_hash": self.source_hash, "dataset_hash": self.dataset_hash,
            "n_train": n_train, "n_replaced": len(self.replaced), "n_changed": len(self.changed),
            "fraction_replaced": len(self.replaced) / n_train if n_train else 0.0,
            "fraction_changed": len(self.changed) / n_train if n_train else 0.0,
            "expected_fraction_changed": expected_fraction_changed(self.label_noise, k, self.label_noise_mode),
            "n_test_changed": len(self.test_changed),
            "label_noise_mode": self.label_noise_mode, "n_test": self.n_test,
            "fraction_test_changed": len(self.test_changed) / self.n_test if self.n_test else 0.0,
            "gaussian_mean": self.gaussian_mean, "gaussian_std": self.gaussian_std,
        }

    def save(self, directory: Path, n_train: int) -> None:
        """Write ``randomization.json`` (readable facts) and ``randomization.npz`` (the index arrays)."""
        directory = Path(directory)
        arrays = {name: getattr(self, name) for name in self.ARRAYS if getattr(self, name) is not None}
        atomic_write(directory / "randomization.npz", lambda f: np.savez_compressed(f, **arrays))
        text = json.dumps(self.summary(n_train), indent=2)
        atomic_write_text(directory / "randomization.json", text)

    @classmethod
    def load(cls, directory: Path) -> "RandomizationRecord":
        """The record saved in ``directory``; DamagedFile naming the file if it cannot be read back."""
        directory = Path(directory)
        facts = read_json(directory / "randomization.json")
        try:
            fields = {k: facts[k] for k in ("seed", "label_noise", "inputs", "corrupt_test_labels", "num_classes",
                                            "source_hash", "dataset_hash", "gaussian_mean", "gaussian_std")}
        except KeyError as missing:
            raise DamagedFile(f"{directory / 'randomization.json'} is damaged: it lacks {missing}") from None
        # records older than the modes lack these two
        fields.update(label_noise_mode=facts.get("label_noise_mode", "uniform"), n_test=facts.get("n_test", 0))
        path = directory / "randomization.npz"
        try:  # numpy refuses pickled (object) arrays here: allow_pickle is False by default
            with np.load(path) as arrays:
                loaded = {name: arrays[name] for name in cls.ARRAYS if name in arrays}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise DamagedFile(f"{path} is damaged ({type(error).__name__}: {str(error)[:120]})") from None
        return cls(**fields, **loaded)


def validate(label_noise: float, inputs: str, seed: int, label_noise_mode: str = "uniform") -> None:
    """Refuse a bad randomization setting in one line naming it and what is allowed.

    Args:
        label_noise: the fraction of labels to corrupt, in [0, 1].
        inputs: the input randomization, one of ``INPUTS``.
        seed: a non-negative integer.
        label_noise_mode: ``uniform`` or ``other`` (see ``rethinkgen.data.label_noise``).
    """
    if isinstance(label_noise, bool) or not isinstance(label_noise, (int, float)) \
            or not math.isfinite(label_noise) or not 0.0 <= label_noise <= 1.0:
        raise RethinkgenError(f"label noise {label_noise!r} is outside [0, 1]")
    if inputs not in INPUTS:
        raise choice_error("input randomization", inputs, INPUTS)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RethinkgenError(f"seed {seed!r} must be a non-negative integer")
    check_mode(label_noise_mode)


def randomize(dataset: Dataset | ImageFiles, label_noise: float = 0.0, inputs: str = "original", seed: int = 0,
              corrupt_test_labels: bool = False,
              label_noise_mode: str = "uniform") -> tuple[Dataset | ImageFiles, RandomizationRecord]:
    """Return the randomized dataset and the record of what was drawn. Pure: ``dataset`` is untouched.

    ``label_noise_mode``: ``uniform`` draws a corrupted label over all classes (the paper's), ``other``
    over the other classes only (see ``rethinkgen.data.label_noise``).

    Args:
        dataset: the data to randomize.
        label_noise: the fraction of training labels to corrupt, in [0, 1] (1: random labels).
        inputs: the input randomization: ``original``, ``shuffled-pixels``, ``random-pixels`` or ``gaussian``.
        seed: seeds every draw.
        corrupt_test_labels: corrupt the test labels in the same way.
        label_noise_mode: ``uniform`` draws a corrupted label over all classes (the paper's), ``other`` over the
            other classes only (see ``rethinkgen.data.label_noise``).

    >>> noisy, record = randomize(load("digits"), label_noise=1.0, seed=3)   # random labels
    """
    validate(label_noise, inputs, seed, label_noise_mode)
    k = dataset.num_classes
    record = RandomizationRecord(int(seed), float(label_noise), inputs, bool(corrupt_test_labels), k,
                                 source_hash=dataset.content_hash(), label_noise_mode=label_noise_mode,
                                 n_test=len(dataset.y_test))
    y_train, record.replaced, record.changed = corrupt_labels(
        dataset.y_train, label_noise, k, _rng(seed, STREAM_TRAIN_LABELS), label_noise_mode)
    y_test = dataset.y_test
    if corrupt_test_labels:
        y_test, record.test_replaced, record.test_changed = corrupt_labels(
            dataset.y_test, label_noise, k, _rng(seed, STREAM_TEST_LABELS), label_noise_mode)

    if inputs == "shuffled-pixels":
        height, width = dataset.image_shape[1:]
        record.permutation = _rng(seed, STREAM_PERMUTATION).permutation(height * width)
    if not isinstance(dataset, Dataset):  # streamed: the pixels are randomized per image as they are decoded
        if inputs == "gaussian":
            sample = _rng(seed, STREAM_MOMENT_SAMPLE).permutation(len(dataset.y_train))[:MOMENT_SAMPLE]
            mean, std = _moments(np.stack([dataset.image("train", i) for i in sorted(sample)]))
            record.gaussian_mean, record.gaussian_std = mean.tolist(), std.tolist()
        pixels = PixelRandomization(inputs, int(seed), record.permutation, record.gaussian_mean, record.gaussian_std)
        randomized = replace(dataset, y_train=y_train, y_test=y_test, pixels=pixels)
        record.dataset_hash = randomized.content_hash()
        return randomized, record

    x_train, x_test = dataset.x_train, dataset.x_test
    if inputs == "shuffled-pixels":
        x_train, x_test = (_permute_pixels(x, record.permutation) for x in (x_train, x_test))
    elif inputs == "random-pixels":
        x_train = _permute_each_image(x_train, _rng(seed, STREAM_TRAIN_INPUTS))
        x_test = _permute_each_image(x_test, _rng(seed, STREAM_TEST_INPUTS))
    elif inputs == "gaussian":
        mean, std = _moments(x_train)
        record.gaussian_mean, record.gaussian_std = mean.tolist(), std.tolist()
        x_train = _gaussian_images(x_train.shape, mean, std, _rng(seed, STREAM_TRAIN_INPUTS))
        x_test = _gaussian_images(x_test.shape, mean, std, _rng(seed, STREAM_TEST_INPUTS))

    randomized = replace(dataset, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    record.dataset_hash = randomized.content_hash()
    return randomized, record


@dataclass
class PixelRandomization:
    """The input randomization of a streamed source, applied to one uint8 [C, H, W] image at a time.

    Shuffled pixels use the one permutation drawn for the whole dataset; random pixels and Gaussian
    images are drawn from (seed, split, index) with the same functions as the in-memory draw, so an
    image is the same every time it is decoded.
    """

    inputs: str
    seed: int
    permutation: np.ndarray | None = None
    mean: list[float] | None = None
    std: list[float] | None = None

    def apply(self, image: np.ndarray, split: str, index: int) -> np.ndarray:
        """One image with this input randomization applied.

        Args:
            image: uint8 ``[C, H, W]``.
            split: ``train`` or ``test`` (the two draw from different streams).
            index: the image's position in its split (random pixels are drawn per image from it).
        """
        if self.inputs == "original":
            return image
        if self.inputs == "shuffled-pixels":
            return _permute_pixels(image[None], self.permutation)[0]
        stream = STREAM_TRAIN_INPUTS if split == "train" else STREAM_TEST_INPUTS
        rng = np.random.default_rng([self.seed, stream, int(index)])
        if self.inputs == "random-pixels":
            return _permute_each_image(image[None], rng)[0]
        return _gaussian_images((1, *image.shape), np.asarray(self.mean), np.asarray(self.std), rng)[0]

    def key(self) -> str:
        """What the images depend on, for the dataset's hash."""
        permutation = "" if self.permutation is None else hashlib.sha256(self.permutation.tobytes()).hexdigest()
        return json.dumps([self.inputs, self.seed, permutation, self.mean, self.std])


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images [N, C, H, W]."""
    as_float = x.astype(np.float64)
    return as_float.mean(axis=(0, 2, 3)), as_float.std(axis=(0, 2, 3))


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])


def _permute_pixels(x: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, c, h * w)[:, :, permutation].reshape(n, c, h, w))


def _permute_each_image(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    out = np.empty_like(flat)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        order = np.argsort(rng.random((stop - start, h * w)), axis=1)
        out[start:stop] = np.take_along_axis(flat[start:stop], order[:, None, :], axis=2)
    return out.reshape(n, c, h, w)


def _gaussian_images(shape, mean: np.ndarray, std: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n, c, h, w = shape
    out = np.empty(shape, dtype=np.uint8)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        noise = rng.standard_normal((stop - start, c, h, w)) * std[None, :, None, None] + mean[None, :, None, None]
        out[start:stop] = np.clip(np.round(noise), 0, 255).astype(np.uint8)
    return out
