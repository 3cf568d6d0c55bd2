"""Section 5: kernel "regression" that interpolates, K alpha = Y, and the minimum-norm solution.

SGD on a linear model started at zero stays in the span of the data, so if it interpolates it finds
w = X^T alpha with X X^T alpha = y: the minimum-norm interpolant. The kernel trick makes that
K alpha = Y for any kernel. ``interpolate`` solves it with no regularization (or with ``l2``) for the
linear, Gaussian (RBF) and Laplacian kernels and reports the RKHS norm sqrt(trace(alpha^T K alpha)).

Solvers, chosen by size: a float64 Cholesky factorization while the n x n matrix fits the memory budget
(falling back to a least-squares solve when K is singular, e.g. a linear kernel with n > d); beyond that,
conjugate gradients on K stored in float32 (n = 60,000 needs 14.4 GB), built in blocks. CG is
preconditioned with a randomized Nystrom approximation of K's top eigenpairs (Frangella, Tropp & Udell
2023, "Randomized Nystrom preconditioning"), which flattens the fast-decaying top of the spectrum the way
EigenPro does; ``precondition_rank=0`` gives plain CG. Iterative solutions are approximate: the residual
is reported, not assumed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from tqdm.auto import tqdm

from rethinkgen.errors import RethinkgenError, choice_error

KERNELS = ("linear", "rbf", "laplacian")
SOLVERS = ("auto", "cholesky", "cg")
BLOCK = 2048                      # rows of K built at a time
DENSE_BUDGET_BYTES = 8 * 2 ** 30  # float64 K up to 8 GiB (n ~ 32,000) is factorized directly
BANDWIDTH_SAMPLE = 2000           # points used by the median heuristic
PRECONDITION_RANK = 500           # Nystrom rank of the CG preconditioner (0 = plain CG)


def _as_tensor(X) -> torch.Tensor:
    return torch.as_tensor(np.asarray(X, dtype=np.float64).reshape(len(X), -1))


def kernel_block(A: torch.Tensor, B: torch.Tensor, kernel: str, bandwidth: float) -> torch.Tensor:
    """k(a_i, b_j) for all pairs: linear <a, b>, rbf exp(-|a-b|^2 / (2 s^2)), laplacian exp(-|a-b| / s)."""
    if kernel == "linear":
        return A @ B.T
    squared = (A.square().sum(1)[:, None] + B.square().sum(1)[None, :] - 2 * A @ B.T).clamp_min_(0)
    if kernel == "rbf":
        return torch.exp(-squared / (2 * bandwidth ** 2))
    return torch.exp(-squared.sqrt() / bandwidth)


def median_bandwidth(X, sample: int = BANDWIDTH_SAMPLE, seed: int = 0) -> float:
    """The median distance between distinct points of a random sample: a scale-free default bandwidth."""
    X = _as_tensor(X)
    index = np.random.default_rng(seed).permutation(len(X))[:sample]
    S = X[index]
    distances = torch.cdist(S, S)[torch.triu_indices(len(S), len(S), 1).unbind()]
    distances = distances[distances > 0]
    if len(distances) == 0:
        raise RethinkgenError("all sampled points coincide; cannot choose a bandwidth")
    return float(distances.median())


def kernel_matrix(X: torch.Tensor, kernel: str, bandwidth: float, dtype=torch.float64, block: int = BLOCK):
    """K built block by block into one preallocated matrix (never two n x n temporaries), computed in ``dtype``."""
    n = len(X)
    X = X.to(dtype)
    K = torch.empty(n, n, dtype=dtype)
    for start in range(0, n, block):
        K[start:start + block] = kernel_block(X[start:start + block], X, kernel, bandwidth)
    return K


@dataclass
class KernelFit:
    X: torch.Tensor
    alpha: torch.Tensor
    kernel: str
    bandwidth: float
    l2: float
    solver: str
    norm: float
    relative_residual: float
    iterations: int
    seconds: float
    weights: torch.Tensor | None = None  # the linear kernel's w = X^T alpha, when solved in the primal

    def decision(self, X, block: int = BLOCK) -> np.ndarray:
        """sum_i alpha_i k(x_i, x) for each row of X, in blocks."""
        X = _as_tensor(X)
        if self.weights is not None:
            return (X @ self.weights).numpy()
        return torch.cat([kernel_block(X[s:s + block], self.X, self.kernel, self.bandwidth) @ self.alpha
                          for s in range(0, len(X), block)]).numpy()

    def predict(self, X) -> np.ndarray:
        """Class predictions (argmax over one-hot outputs)."""
        return self.decision(X).argmax(1)


def one_hot(labels, num_classes: int | None = None) -> np.ndarray:
    labels = np.asarray(labels)
    return np.eye(num_classes or int(labels.max()) + 1)[labels]


def interpolate(X, Y, kernel: str = "rbf", bandwidth: float | None = None, l2: float = 0.0, solver: str = "auto",
                tol: float = 1e-6, max_iter: int = 2000, budget_bytes: int = DENSE_BUDGET_BYTES,
                precondition_rank: int = PRECONDITION_RANK, seed: int = 0, progress: bool = False) -> KernelFit:
    """Solve (K + l2 I) alpha = Y; ``Y`` is [n, K] (e.g. one-hot) or [n] real targets.

    The result's ``decision(X)`` gives the fitted function; ``norm`` its RKHS norm; ``relative_residual``
    how exactly it interpolates (about 1e-12 with Cholesky).
    """
    if kernel not in KERNELS:
        raise choice_error("kernel", kernel, KERNELS)
    if solver not in SOLVERS:
        raise choice_error("solver", solver, SOLVERS)
    if not (l2 >= 0):
        raise RethinkgenError(f"l2 {l2!r} must be >= 0")
    if not (isinstance(precondition_rank, int) and precondition_rank >= 0):
        raise RethinkgenError(f"precondition rank {precondition_rank!r} must be an integer >= 0")
    X = _as_tensor(X)
    Y = torch.as_tensor(np.asarray(Y, dtype=np.float64))
    Y = Y[:, None] if Y.ndim == 1 else Y
    if len(X) != len(Y) or len(X) == 0:
        raise RethinkgenError(f"{len(X)} points but {len(Y)} targets")
    if bandwidth is None:
        bandwidth = median_bandwidth(X) if kernel != "linear" else 1.0
    if not (bandwidth > 0):
        raise RethinkgenError(f"bandwidth {bandwidth!r} must be > 0")
    n = len(X)
    if kernel == "linear" and n > X.shape[1]:
        return _linear_primal(X, Y, l2)
    if solver == "auto":
        solver = "cholesky" if n * n * 8 <= budget_bytes else "cg"
    started = time.perf_counter()
    if solver == "cholesky":
        K = kernel_matrix(X, kernel, bandwidth)
        system = K + l2 * torch.eye(n, dtype=K.dtype) if l2 else K
        try:
            factor = scipy.linalg.cho_factor(system.numpy(), lower=True, check_finite=False)
            alpha = torch.from_numpy(scipy.linalg.cho_solve(factor, Y.numpy(), check_finite=False))
        except np.linalg.LinAlgError:  # singular (e.g. linear kernel, n > d): minimum-norm least squares
            solver = "lstsq"
            alpha = torch.from_numpy(scipy.linalg.lstsq(system.numpy(), Y.numpy(), lapack_driver="gelsd")[0])
        iterations = 0
        matvec = lambda v: K @ v  # noqa: E731
    else:
        _check_memory(n * n * 4 + (n * (X.shape[1] + 4 * precondition_rank) + 2 * BLOCK * n) * 8,
                      f"the float32 kernel matrix for n = {n:,}")
        K32 = kernel_matrix(X, kernel, bandwidth, dtype=torch.float32)
        matvec = lambda v: (K32 @ v.float()).double()  # noqa: E731
        rank = min(precondition_rank, n - 1)
        precondition = nystrom_preconditioner(matvec, n, rank, l2, seed) if rank > 0 else (lambda r: r)
        with tqdm(total=max_iter, disable=not progress, desc=f"CG n={n:,}", unit="it", leave=False) as bar:
            def report(relative_residual: float) -> None:
                bar.set_postfix(residual=f"{relative_residual:.1e}", refresh=False)
                bar.update()
            alpha, iterations = _conjugate_gradients(lambda v: matvec(v) + l2 * v, Y, tol, max_iter, precondition,
                                                     report)
    # how far K alpha is from Y: ~0 when it interpolates, larger with l2 (which solves (K + l2 I) alpha = Y)
    residual = (matvec(alpha) - Y).norm() / Y.norm().clamp_min(1e-300)
    norm = float(torch.sqrt((alpha * matvec(alpha)).sum().clamp_min(0)))
    return KernelFit(X, alpha, kernel, bandwidth, l2, solver, norm, float(residual), iterations,
                     time.perf_counter() - started)


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where it cannot be read."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _check_memory(needed: int, what: str) -> None:
    """Refuse up front, rather than be killed by the kernel's OOM killer an hour later."""
    available = available_memory_bytes()
    if available is not None and needed > available:
        raise RethinkgenError(f"{what} needs {needed / 2 ** 30:.1f} GiB but only {available / 2 ** 30:.1f} GiB of "
                              f"memory is available; use a smaller --n or free memory")


def _linear_primal(X: torch.Tensor, Y: torch.Tensor, l2: float) -> KernelFit:
    """The linear kernel with more points than dimensions: w = X^+ Y (or ridge), the same minimum-norm
    solution as the dual, found in d dimensions instead of n. It interpolates only if Y is in X's range."""
    started = time.perf_counter()
    if l2:
        w = torch.linalg.solve(X.T @ X + l2 * torch.eye(X.shape[1], dtype=X.dtype), X.T @ Y)
    else:
        w = torch.from_numpy(scipy.linalg.lstsq(X.numpy(), Y.numpy(), lapack_driver="gelsd")[0])
    residual = float((X @ w - Y).norm() / Y.norm().clamp_min(1e-300))
    return KernelFit(X, torch.zeros(0), "linear", 1.0, l2, "primal-lstsq", float(w.norm()), residual, 0,
                     time.perf_counter() - started, weights=w)


def nystrom_preconditioner(matvec, n: int, rank: int, shift: float, seed: int = 0):
    """The inverse of P = U (L + shift) U^T / (l_min + shift) + (I - U U^T), where U L U^T is a randomized
    Nystrom approximation of K (one pass of K over ``rank`` random directions, numerically stable form of
    Tropp et al. 2017). P^-1 (K + shift I) has its top ``rank`` eigenvalues squeezed to about l_min + shift."""
    generator = torch.Generator().manual_seed(seed)
    omega, _ = torch.linalg.qr(torch.randn(n, rank, dtype=torch.float64, generator=generator))
    sketch = matvec(omega)
    nu = n ** 0.5 * torch.finfo(torch.float32).eps * torch.linalg.matrix_norm(sketch, 2)
    sketch += nu * omega
    lower = torch.linalg.cholesky(omega.T @ sketch)
    B = torch.linalg.solve_triangular(lower, sketch.T, upper=False).T
    U, singular, _ = torch.linalg.svd(B, full_matrices=False)
    eigen = (singular ** 2 - nu).clamp_min(0)
    floor = max(float(eigen[-1]) + shift, 1e-12 * float(eigen[0]) + shift, 1e-300)
    scale = floor / (eigen + shift).clamp_min(floor)

    def apply(r: torch.Tensor) -> torch.Tensor:
        projected = U.T @ r
        return r + U @ ((scale[:, None] - 1) * projected)
    return apply


def _conjugate_gradients(apply, Y: torch.Tensor, tol: float, max_iter: int,
                         precondition=lambda r: r, report=lambda relative_residual: None) -> tuple[torch.Tensor, int]:
    """Preconditioned CG on every column of Y at once (each column keeps its own step sizes);
    stops when every column's residual |Y - A alpha| is below tol |Y|."""
    alpha = torch.zeros_like(Y)
    r = Y.clone()
    z = precondition(r)
    p = z.clone()
    rz = (r * z).sum(0)
    target = tol ** 2 * (Y * Y).sum(0)
    for iteration in range(1, max_iter + 1):
        Ap = apply(p)
        step = rz / (p * Ap).sum(0).clamp_min(1e-300)
        alpha += step * p
        r -= step * Ap
        squares = (r * r).sum(0)
        report(float((squares.sum() / (Y * Y).sum().clamp_min(1e-300)).sqrt()))
        if bool((squares <= target).all()):
            return alpha, iteration
        z = precondition(r)
        new_rz = (r * z).sum(0)
        p = z + (new_rz / rz) * p
        rz = new_rz
    return alpha, max_iter


def sgd_from_zero(X, y, epochs: int = 200, lr: float | None = None, seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    """Plain SGD on the squared loss of a linear model, one example at a time, started at w = 0.

    Returns the weights and, per epoch, the training loss and the distance to the minimum-norm
    interpolant pinv(X) y, which SGD approaches because every update is a multiple of some x_i.
    """
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y, dtype=np.float64)
    w_min_norm = np.linalg.pinv(X) @ y
    lr = lr or 1.0 / np.max(np.sum(X * X, axis=1))  # below 2 / |x_i|^2, so each step is stable
    rng, w, history = np.random.default_rng(seed), np.zeros(X.shape[1]), []
    for epoch in range(1, epochs + 1):
        for i in rng.permutation(len(X)):
            w -= lr * (X[i] @ w - y[i]) * X[i]
        history.append({"epoch": epoch, "loss": float(np.mean((X @ w - y) ** 2)),
                        "distance_to_min_norm": float(np.linalg.norm(w - w_min_norm)),
                        "norm": float(np.linalg.norm(w)), "min_norm": float(np.linalg.norm(w_min_norm))})
    return w, history
