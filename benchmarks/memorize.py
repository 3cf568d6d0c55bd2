"""Theorem 1's network: the structured O(n log n) solve against a dense triangular solve, side by side.

The dense route forms Lemma 1's n x n matrix A_ij = max(x_i - b_j, 0) and calls LAPACK's triangular
solver: O(n^2) memory and time. The structured route (rethinkgen.theory.expressivity.memorize) sorts the
projections and solves a first-order recurrence: O(n log n) time, O(n) memory. Both are run on the same
synthetic points at the largest n the dense route handles comfortably here; the structured one is then
run alone at n = 1,000,000, which the dense one could not hold (8 TB).

Run: python benchmarks/memorize.py [--dense-n 20000] [--big-n 1000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from scipy.linalg import solve_triangular

from rethinkgen.theory.expressivity import memorize


def dense_solve(X: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Seconds and max residual of the dense route with the same direction and biases."""
    started = time.perf_counter()
    order = np.argsort(X @ a)
    x = (X @ a)[order]
    A = np.maximum(x[:, None] - b[None, :], 0.0)
    w = solve_triangular(A, y[order], lower=True, check_finite=False)
    seconds = time.perf_counter() - started
    return seconds, float(np.abs(A @ w - y[order]).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dense-n", type=int, default=20000, help="points for the side-by-side comparison")
    parser.add_argument("--big-n", type=int, default=1_000_000, help="points for the structured solve alone")
    parser.add_argument("--d", type=int, default=10, help="dimensions")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores | numpy {np.__version__} | torch {torch.__version__}")
    rng = np.random.default_rng(0)

    n = args.dense_n
    X, y = rng.random((n, args.d)), rng.integers(0, 10, n).astype(float)
    started = time.perf_counter()
    fit = memorize(X, y, check_duplicates=False)
    structured = time.perf_counter() - started
    a, b = fit.network.a.detach().numpy(), fit.network.b.detach().numpy()
    dense, dense_residual = dense_solve(X, y, a, b)
    print(f"n = {n:,}, d = {args.d}: structured {structured:.3f}s (max residual {fit.max_residual:.2e}), "
          f"dense {dense:.3f}s (max residual {dense_residual:.2e}, {n * n * 8 / 2**30:.1f} GiB matrix); "
          f"structured is {dense / structured:.0f}x faster")

    n = args.big_n
    X, y = rng.random((n, args.d)), rng.integers(0, 10, n).astype(float)
    started = time.perf_counter()
    fit = memorize(X, y, check_duplicates=False)
    seconds = time.perf_counter() - started
    print(f"n = {n:,}, d = {args.d}: structured {seconds:.2f}s, {fit.parameter_count:,} weights, "
          f"max residual {fit.max_residual:.2e}; dense would need {n * n * 8 / 2**40:.1f} TiB")


if __name__ == "__main__":
    main()
