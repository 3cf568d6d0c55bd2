"""Datasets that need no files: scikit-learn's digits (the offline default) and a synthetic one for tests."""

from __future__ import annotations

import numpy as np

from rethinkgen.data.dataset import Dataset

DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0  # fixed so that every user gets the same train/test split
DIGITS_MAX = 16  # sklearn's digits hold counts 0..16 per 4x4 block


def load_digits() -> Dataset:
    """scikit-learn's 1,797 8x8 handwritten digits, scaled to 0..255, split 1,347 train / 450 test."""
    # scikit-learn only when the digits are loaded: keeps config (and CLI start-up) light
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split  # (as above)

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255 / DIGITS_MAX)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=labels)
    return Dataset("digits", x_train, y_train, x_test, y_test, tuple(str(d) for d in range(10)))


def load_synthetic(n_train: int = 512, n_test: int = 256, channels: int = 1, size: int = 8,
                   num_classes: int = 4, seed: int = 0) -> Dataset:
    """Each class is a fixed random template plus noise: learnable, tiny, and any shape a test wants."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, size=(num_classes, channels, size, size))

    def draw(n):
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        images = templates[labels] + rng.normal(0, 40, size=(n, channels, size, size))
        return np.clip(np.round(images), 0, 255).astype(np.uint8), labels.astype(np.int64)

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return Dataset("synthetic", x_train, y_train, x_test, y_test, tuple(f"class{k}" for k in range(num_classes)))
