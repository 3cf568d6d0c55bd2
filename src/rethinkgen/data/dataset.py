"""The in-memory dataset every source returns and every later stage consumes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from rethinkgen.errors import RethinkgenError


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 ``[N, C, H, W]``, labels as int64 ``[N]``, for a train and a test split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != np.uint8 or x.ndim != 4:
                raise RethinkgenError(f"{self.name}: x_{split} must be uint8 [N, C, H, W], got {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.ndim != 1 or len(y) != len(x):
                raise RethinkgenError(
                    f"{self.name}: y_{split} must be int64 [{len(x)}], got {y.dtype} {y.shape}")
            if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
                raise RethinkgenError(
                    f"{self.name}: y_{split} has labels outside 0..{len(self.classes) - 1}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise RethinkgenError(
                f"{self.name}: train images {self.x_train.shape[1:]} and test images "
                f"{self.x_test.shape[1:]} differ in shape")

    @property
    def num_classes(self) -> int:
        """The number of classes (``len(classes)``)."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """One image's shape, (C, H, W)."""
        return tuple(self.x_train.shape[1:])

    def subset(self, n: int | None = None, seed: int = 0, n_test: int | None = None) -> "Dataset":
        """A stratified subset of ``n`` training (and ``n_test`` test) examples, the same for the same seed.

        Args:
            n: training examples to keep (None: all).
            seed: seeds the draw.
            n_test: test examples to keep (None: all).
        """
        x_train, y_train, x_test, y_test = self.x_train, self.y_train, self.x_test, self.y_test
        if n is not None:
            idx = self.subset_indices(n, seed)
            x_train, y_train = x_train[idx], y_train[idx]
        if n_test is not None:
            idx = _stratified_indices(y_test, n_test, seed + 1, "test", self.name)
            x_test, y_test = x_test[idx], y_test[idx]
        return replace(self, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    def subset_indices(self, n: int, seed: int = 0) -> np.ndarray:
        """The sorted training indices that ``subset(n, seed)`` keeps.

        Args:
            n: training examples to keep.
            seed: seeds the draw.
        """
        return _stratified_indices(self.y_train, n, seed, "train", self.name)

    def content_hash(self) -> str:
        """A short SHA-256 of all four arrays: identical data gives an identical hash."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    def describe(self) -> str:
        """One line: name, split sizes, image shape and number of classes."""
        return (f"{self.name}: {len(self.y_train)} train / {len(self.y_test)} test, "
                f"images {'x'.join(map(str, self.image_shape))}, {self.num_classes} classes")


def _stratified_indices(labels: np.ndarray, n: int, seed: int, split: str, name: str) -> np.ndarray:
    """``n`` indices whose class proportions match ``labels`` as closely as integers allow, sorted."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 or n > len(labels):
        raise RethinkgenError(f"{name}: {split} subset size {n!r} must be an integer in 1..{len(labels)}")
    if n == len(labels):
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n / len(labels)
    take = np.floor(quota).astype(int)
    leftover = n - take.sum()
    # hand out the remaining slots to the classes with the largest fractional parts
    take[np.argsort(-(quota - take), kind="stable")[:leftover]] += 1
    chosen = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen))
