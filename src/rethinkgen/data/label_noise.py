"""Label noise: how a corrupted label is drawn, what fraction of labels it changes, and chance accuracy.

Two modes of drawing the new label of an example chosen (with probability ``p``) for corruption:

- ``uniform`` (the paper's): the new label is uniform over all K classes, so about p/K of the chosen
  labels stay right and the expected fraction of labels that change is p (1 - 1/K);
- ``other`` (much of the noisy-label literature's): the new label is uniform over the K - 1 other
  classes, so every chosen label changes and the expected fraction is p.
"""

from __future__ import annotations

import numpy as np

from rethinkgen.choices import LABEL_NOISE_MODES
from rethinkgen.errors import choice_error


def check_mode(mode: str) -> str:
    """Refuse an unknown mode, naming the allowed ones; return it."""
    if mode not in LABEL_NOISE_MODES:
        raise choice_error("label noise mode", mode, LABEL_NOISE_MODES)
    return mode


def corrupt_labels(labels: np.ndarray, p: float, k: int, rng: np.random.Generator, mode: str = "uniform"):
    """Corrupt each label independently with probability ``p``; return (new labels, the indices chosen,
    the indices whose label changed).

    Args:
        labels: int64 labels in 0..k-1.
        p: the probability that a label is chosen for corruption.
        k: the number of classes.
        rng: the random stream (two draws per label, in the same order in both modes).
        mode: ``uniform`` (a new label over all k classes) or ``other`` (over the k - 1 other classes).
    """
    check_mode(mode)
    replace_mask = rng.random(len(labels)) < p
    if mode == "uniform":
        draws = rng.integers(0, k, size=len(labels))
    else:  # a shift of 1..k-1 classes: a uniform draw over the other classes
        draws = (labels + rng.integers(1, k, size=len(labels))) % k
    new = np.where(replace_mask, draws, labels).astype(np.int64)
    return new, np.flatnonzero(replace_mask), np.flatnonzero(new != labels)


def expected_fraction_changed(p: float, k: int, mode: str = "uniform") -> float:
    """The expected fraction of labels that change: p (1 - 1/k) in ``uniform`` mode, p in ``other``."""
    return p * (1 - 1 / k) if check_mode(mode) == "uniform" else p


def chance_accuracy(k: int, test_changed: float | None = None) -> float:
    """The accuracy of a guess on the test labels in use, the baseline a test accuracy is read against.

    Args:
        k: the number of classes.
        test_changed: the realized fraction p' of test labels that were changed, for corrupted test labels
            (None for clean test labels). Clean labels: 1/k. Corrupted ones: (1 - p')^2 + p'^2/(k - 1),
            the chance that a prediction corrupted like the training labels matches a test label
            corrupted the same way.
    """
    if test_changed is None:
        return 1 / k
    return (1 - test_changed) ** 2 + test_changed ** 2 / (k - 1)
