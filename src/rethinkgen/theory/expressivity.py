"""Theorem 1: a depth-2 ReLU network with 2n + d weights fits any targets on n distinct points in R^d.

The construction (Section 4, App. C): project every point on one direction a, sort the projections
x_1 < ... < x_n, place one bias b_j in each gap so that b_1 < x_1 < b_2 < x_2 < ... < b_n < x_n, and
solve A w = y with A_ij = max(x_i - b_j, 0). A is lower triangular, so

    c(x_i) = sum_{j <= i} w_j (x_i - b_j) = x_i S_i - T_i,   S_i = sum_{j<=i} w_j,  T_i = sum_{j<=i} w_j b_j.

Between two biases c is linear with slope S_i, so with b_i = x_{i-1} + theta * gap_i the slopes obey
S_i = (y_i - y_{i-1}) / ((1 - theta) gap_i) - theta / (1 - theta) * S_{i-1}: a first-order linear
recurrence, solved in O(n) by an IIR filter after an O(n log n) sort, never forming A.

Conditioning: A's smallest eigenvalue is min_i (x_i - b_i) = (1 - theta) * (smallest gap), and the
weights grow like target differences over gaps. So the direction is chosen, among several random ones,
to maximize the smallest gap relative to the spread of the projections, and theta = 1/4 keeps the
recurrence contracting (|theta / (1 - theta)| = 1/3), so rounding errors die out instead of adding up.
Everything is computed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.signal import lfilter
from torch import nn

from rethinkgen.errors import RethinkgenError

THETA = 0.25             # where each bias sits in its gap, from the left
DIRECTION_TRIES = 16     # random directions tried; the best-separated one is kept
CHUNK_ELEMENTS = 1 << 24  # evaluation never builds a (points x units) block larger than this


class MemorizingNetwork(nn.Module):
    """c(x) = sum_j w_j max(<a, x> - b_j, 0): one hidden layer whose units share the weight vector a.

    Parameters: ``a`` (d), ``b`` (n) and ``w`` (n x K): d + n + nK weights, 2n + d for one output.
    """

    def __init__(self, a: torch.Tensor, b: torch.Tensor, w: torch.Tensor):
        super().__init__()
        self.a = nn.Parameter(a)
        self.b = nn.Parameter(b)
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The literal network, evaluated in chunks of units so memory stays bounded."""
        projection = x.flatten(1).to(self.a.dtype) @ self.a
        out = torch.zeros(len(x), self.w.shape[1], dtype=self.w.dtype, device=self.w.device)
        points = max(1, len(x))
        chunk = max(1, CHUNK_ELEMENTS // points)
        for start in range(0, len(self.b), chunk):
            hidden = torch.relu(projection[:, None] - self.b[None, start:start + chunk])
            out += hidden @ self.w[start:start + chunk]
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The same function in O(log n) per point: c(t) = t S_k - T_k, k = number of biases below t."""
        t = x.flatten(1).to(self.a.dtype) @ self.a
        slopes = torch.cumsum(self.w, 0)
        offsets = torch.cumsum(self.w * self.b[:, None], 0)
        k = torch.searchsorted(self.b, t)  # biases are sorted; b_j < t for j < k
        zero = torch.zeros(1, self.w.shape[1], dtype=self.w.dtype)
        slopes, offsets = torch.cat([zero, slopes]), torch.cat([zero, offsets])
        return t[:, None] * slopes[k] - offsets[k]


@dataclass
class Memorized:
    """The network of Theorem 1 built by ``memorize``, and how exactly it fits.

    Args:
        network: the depth-2 ReLU network.
        n: the number of points fitted.
        d: their dimension.
        outputs: outputs per point (1 for real targets, K for an [n, K] target matrix).
        max_residual: the largest |network(x_i) - y_i| over the points.
        smallest_gap: the smallest gap between two consecutive projections of the points.
    """

    network: MemorizingNetwork
    n: int
    d: int
    outputs: int
    max_residual: float
    smallest_gap: float

    @property
    def parameter_count(self) -> int:
        """The network's number of weights: d + n + n * outputs."""
        return sum(p.numel() for p in self.network.parameters())


def _duplicates(X: np.ndarray, Y: np.ndarray) -> None:
    """Identical points with different targets cannot be fitted by any function: name them."""
    _, first, inverse = np.unique(X, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if len(first) == len(X):
        return
    for i in np.flatnonzero(first[inverse] != np.arange(len(X))):
        j = first[inverse[i]]
        if not np.array_equal(Y[i], Y[j]):
            raise RethinkgenError(f"points {j} and {i} are identical but have different targets; "
                                  f"no function can fit both")
    raise RethinkgenError(f"the points contain {len(X) - len(first)} duplicates (with equal targets); "
                          "remove them, the construction needs distinct points")


def choose_direction(X: np.ndarray, rng: np.random.Generator, tries: int = DIRECTION_TRIES) -> np.ndarray:
    """The random unit direction whose sorted projections have the largest smallest gap per unit spread."""
    best, best_score = None, -1.0
    for _ in range(tries):
        a = rng.standard_normal(X.shape[1])
        a /= np.linalg.norm(a)
        x = np.sort(X @ a)
        spread = x[-1] - x[0]
        score = np.diff(x).min() / spread if len(x) > 1 and spread > 0 else 1.0
        if score > best_score:
            best, best_score = a, score
    if best_score <= 0:
        raise RethinkgenError("no direction separates the points (their projections coincide)")
    return best


def memorize(X: ArrayLike, y: ArrayLike, seed: int = 0, check_duplicates: bool = True) -> Memorized:
    """Build the network of Theorem 1 that fits ``y`` exactly on the rows of ``X``.

    Args:
        X: the n points, [n, ...] (flattened to [n, d]); they must be distinct.
        y: a vector of n real targets (2n + d weights) or an ``[n, K]`` matrix, e.g. one-hot classes
            (d + n + nK weights, one output per column, a and b shared).
        seed: seeds the random directions the points are projected on.
        check_duplicates: refuse identical points first (False skips that check for speed).

    >>> fit = memorize(np.random.rand(100, 5), np.random.rand(100))
    >>> fit.parameter_count, fit.max_residual < 1e-8
    (205, True)
    """
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    Y = np.asarray(y, dtype=np.float64)
    single = Y.ndim == 1
    Y = Y[:, None] if single else Y
    if len(X) != len(Y):
        raise RethinkgenError(f"{len(X)} points but {len(Y)} targets")
    if len(X) == 0 or not np.isfinite(X).all() or not np.isfinite(Y).all():
        raise RethinkgenError("points and targets must be non-empty and finite")
    if check_duplicates:
        _duplicates(X, Y)
    n, d = X.shape
    a = choose_direction(X, np.random.default_rng(seed))
    projections = X @ a
    order = np.argsort(projections, kind="stable")
    x, targets = projections[order], Y[order]
    gaps = np.diff(x)
    if n > 1 and gaps.min() <= 0:
        raise RethinkgenError("two points project to the same value; they are (numerically) duplicates")
    first_gap = gaps.min() if n > 1 else 1.0
    b = np.concatenate([[x[0] - (1 - THETA) * first_gap], x[:-1] + THETA * gaps])
    # slopes S_i = alpha_i + beta S_{i-1}, with alpha_1 = y_1 / (x_1 - b_1) since c(b_1) = 0
    run = x - b                                              # x_i - b_i > 0: A's diagonal
    beta = -THETA / (1 - THETA)
    alpha = np.empty_like(targets)
    alpha[0] = targets[0] / run[0]
    alpha[1:] = (targets[1:] - targets[:-1]) / run[1:, None]
    slopes = lfilter([1.0], [1.0, -beta], alpha, axis=0)
    w = np.diff(slopes, axis=0, prepend=0.0)
    fitted = x[:, None] * np.cumsum(w, 0) - np.cumsum(w * b[:, None], 0)
    residual = float(np.abs(fitted - targets).max())
    network = MemorizingNetwork(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(w))
    return Memorized(network, n, d, Y.shape[1], residual, float(first_gap))


def count_for(n: int, d: int, outputs: int = 1) -> int:
    """Weights of the construction: d + n + n * outputs (2n + d for one output)."""
    return d + n + n * outputs


def class_accuracy(network: MemorizingNetwork, X, labels, chunk: int = 65536) -> float:
    """Accuracy of argmax over the outputs, evaluated with the O(log n) form in chunks."""
    X = torch.as_tensor(np.asarray(X, dtype=np.float64).reshape(len(X), -1))
    labels = torch.as_tensor(np.asarray(labels))
    correct = sum(int((network.predict(X[i:i + chunk]).argmax(1) == labels[i:i + chunk]).sum())
                  for i in range(0, len(X), chunk))
    return correct / max(1, len(X))

