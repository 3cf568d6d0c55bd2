"""Section 5: kernel "regression" that interpolates, K alpha = Y, and the minimum-norm solution.

SGD on a linear model started at zero stays in the span of the data, so if it interpolates it finds
w = X^T alpha with X X^T alpha = y: the minimum-norm interpolant. The kernel trick makes that
K alpha = Y for any kernel. ``interpolate`` solves it with no regularization (or with ``l2``) for the
linear, Gaussian (RBF) and Laplacian kernels and reports the RKHS norm sqrt(trace(alpha^T K alpha)).

Three solvers; ``solver="auto"`` takes the first whose estimated peak memory fits the budget:

* ``cholesky``: K in float64, factorized in place (one n x n array), two triangular solves.
* ``mixed``: K built in float32 in place and factorized in float32 in place (half the memory: n = 60,000
  needs 14.4 GB instead of 28.8 GB), then conjugate gradients on the float64 system, preconditioned by
  that factor. CG's products K v recompute K's rows in float64 blocks from X, so the factor stays the
  only n x n array and the answer has float64 accuracy: with a good preconditioner 2-4 iterations.
* ``cg``: conjugate gradients preconditioned by a randomized Nystrom approximation of K (Frangella,
  Tropp & Udell 2023), on K stored in float32 when that fits, else recomputed in float64 blocks at
  every product. Used automatically only where even the float32 matrix does not fit; it may need
  hundreds of iterations and stop short of the tolerance (``converged`` says so).

All work on a CUDA device too (``device="cuda"``: the matrix lives in GPU memory). The solvers stop at a
relative residual |K alpha - Y| / |Y| of ``tol`` (1e-6 by default) and report the residual reached.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import torch
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from rethinkgen.checks import integer, number
from rethinkgen.errors import RethinkgenError, choice_error

KERNELS = ("linear", "rbf", "laplacian")
SOLVERS = ("auto", "cholesky", "mixed", "cg")
FACTORIZATIONS = ("auto", "blocked", "lapack")
BANDWIDTHS = ("half-median", "median", "recipe")
RECIPE_BANDWIDTH = 5.0            # exp(-0.02 |x - x'|^2) = exp(-|x - x'|^2 / (2 * 5^2)): MNIST pixels / 255
BLOCK = 1024                      # rows of K built or recomputed at a time
PANEL = 1024                      # columns per panel of the blocked Cholesky factorization
LAPACK_UP_TO = 16384              # auto factorization: one LAPACK call up to this n (measured 1.7x faster at
                                  # n = 5,000, the same at 16,000), the blocked one with progress above
BANDWIDTH_SAMPLE = 2000           # points used by the median heuristic
PRECONDITION_RANK = 500           # Nystrom rank of the CG preconditioner (0 = plain CG)
OVERHEAD_BYTES = 256 * 2 ** 20    # allowance for the interpreter, libraries and small arrays
SHIFTS = (0.0, 1e-6, 1e-5, 1e-4)  # diagonal shifts (x mean diagonal) tried when float32 Cholesky fails


def _as_tensor(X) -> torch.Tensor:
    return torch.as_tensor(np.asarray(X, dtype=np.float64).reshape(len(X), -1))


def kernel_block(A: torch.Tensor, B: torch.Tensor, kernel: str, bandwidth: float, out: torch.Tensor | None = None,
                 A_squares: torch.Tensor | None = None, B_squares: torch.Tensor | None = None) -> torch.Tensor:
    """k(a_i, b_j) for all pairs: linear <a, b>, rbf exp(-|a-b|^2 / (2 s^2)), laplacian exp(-|a-b| / s).

    Computed in A's dtype, in place in ``out`` when given (e.g. a block of rows of a larger matrix), with
    no temporary of out's size. ``A_squares``/``B_squares`` are the rows' squared norms, if already known.
    """
    out = torch.mm(A, B.T, out=out) if out is not None else A @ B.T
    if kernel == "linear":
        return out
    A_squares = A.square().sum(1) if A_squares is None else A_squares
    B_squares = B.square().sum(1) if B_squares is None else B_squares
    out.mul_(-2).add_(A_squares[:, None]).add_(B_squares[None, :]).clamp_(min=0)  # |a - b|^2
    if kernel == "rbf":
        return out.mul_(-1 / (2 * bandwidth ** 2)).exp_()
    return out.sqrt_().mul_(-1 / bandwidth).exp_()


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


def choose_bandwidth(X, bandwidth: float | str | None) -> float:
    """A number is used as it is; ``"half-median"`` (the default, None) is half the median distance,
    ``"median"`` the median distance, ``"recipe"`` 5.0, i.e. exp(-0.02 |x - x'|^2) (the MNIST recipe, for
    pixels in [0, 1]; about half the median distance there, hence the scale-free default)."""
    bandwidth = "half-median" if bandwidth is None else bandwidth
    if isinstance(bandwidth, str):
        if bandwidth not in BANDWIDTHS:
            raise choice_error("bandwidth", bandwidth, BANDWIDTHS + ("a number > 0",))
        if bandwidth == "recipe":
            return RECIPE_BANDWIDTH
        return median_bandwidth(X) * (0.5 if bandwidth == "half-median" else 1.0)
    if not (bandwidth > 0 and math.isfinite(bandwidth)):
        raise RethinkgenError(f"bandwidth {bandwidth!r} must be > 0")
    return float(bandwidth)


def kernel_matrix(X: torch.Tensor, kernel: str, bandwidth: float, dtype=torch.float64, block: int | None = None,
                  shift: float = 0.0, progress: bool = False) -> torch.Tensor:
    """K (+ shift I) built ``block`` rows at a time (default BLOCK) in place in one matrix of ``dtype`` on
    X's device."""
    n, block = len(X), block or BLOCK
    X = X.to(dtype)
    squares = X.square().sum(1)
    K = torch.empty(n, n, dtype=dtype, device=X.device)
    with tqdm(total=n, disable=not progress, desc=f"build K n={n:,}", unit="row", leave=False) as bar:
        for start in range(0, n, block):
            rows = slice(start, start + block)
            kernel_block(X[rows], X, kernel, bandwidth, out=K[rows], A_squares=squares[rows], B_squares=squares)
            bar.update(len(K[rows]))
    if shift:
        K.diagonal().add_(shift)
    return K


class NotPositiveDefinite(Exception):
    """Cholesky met a non-positive pivot (the matrix is singular or too ill-conditioned for its dtype)."""


def cholesky_in_place(A: torch.Tensor, method: str = "auto", panel: int | None = None,
                      progress: bool = False) -> None:
    """Overwrite the lower triangle of the symmetric positive definite A with L, A = L L^T.

    ``blocked``: a right-looking factorization in panels (potrf of the diagonal block, a triangular solve
    for the panel below it, a GEMM update of the trailing lower triangle), all in place, with a progress
    bar. ``lapack``: one potrf call through torch (in place, on the transposed view), no progress.
    ``auto``: lapack up to n = LAPACK_UP_TO, blocked above.
    Only the lower triangle is read; the upper one is left as garbage. Raises NotPositiveDefinite.
    """
    n, panel = len(A), panel or PANEL
    if method == "auto":
        method = "lapack" if n <= LAPACK_UP_TO else "blocked"
    info = torch.zeros((), dtype=torch.int32, device=A.device)
    if method == "lapack":
        # A.mT is column-major (no copy); its upper factor U = L^T lands in A's lower triangle as L
        torch.linalg.cholesky_ex(A.mT, upper=True, out=(A.mT, info))
        if int(info):
            raise NotPositiveDefinite(f"pivot {int(info)} of {n}")
        return
    total = n ** 3 / 3e9
    with tqdm(total=round(total, 1), disable=not progress, desc=f"Cholesky n={n:,}", unit="GFLOP",
              leave=False, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} GFLOP [{elapsed}<{remaining}]") as bar:
        for k in range(0, n, panel):
            end = min(k + panel, n)
            diagonal = A[k:end, k:end]
            factor, info = torch.linalg.cholesky_ex(diagonal)
            if int(info):
                raise NotPositiveDefinite(f"pivot {k + int(info)} of {n}")
            diagonal.copy_(factor)
            if end < n:
                below = A[end:, k:end]  # panel: L21 = A21 L11^-T
                below.copy_(torch.linalg.solve_triangular(factor.mT, below, upper=True, left=False))
                for j in range(end, n, panel):  # lower triangle of A22 -= L21 L21^T, one column block at a time
                    A[j:, j:j + panel].addmm_(below[j - end:], below[j - end:j - end + panel].T, alpha=-1)
            bar.update(round((n - k) ** 3 / 3e9 - (n - end) ** 3 / 3e9, 6))


def cholesky_solve(L: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """(L L^T)^-1 B, reading only L's lower triangle, in L's dtype; returns B's dtype."""
    Z = torch.linalg.solve_triangular(L, B.to(L.dtype), upper=False)
    return torch.linalg.solve_triangular(L.mT, Z, upper=True).to(B.dtype)


def recomputed_matvec(X: torch.Tensor, kernel: str, bandwidth: float, shift: float = 0.0,
                      block: int | None = None, dtype=torch.float64):
    """V -> (K + shift I) V with K recomputed in ``dtype`` from X, ``block`` rows at a time (default BLOCK).

    K is symmetric, so only its upper block triangle is computed: each block of rows K[i, i:] serves both
    K[i, i:] V[i:] and, transposed, K[i:, i] V[i]. That is n^2 d flops per product (half of computing all
    of K) and one block of rows of memory.
    """
    X, block = X.to(dtype), block or BLOCK
    squares = X.square().sum(1)
    buffer = torch.empty(min(block, len(X)) * len(X), dtype=dtype, device=X.device)

    def apply(V: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(V)
        for start in range(0, len(X), block):
            end = min(start + block, len(X))
            K_rows = kernel_block(X[start:end], X[start:], kernel, bandwidth,
                                  out=buffer[:(end - start) * (len(X) - start)].view(end - start, len(X) - start),
                                  A_squares=squares[start:end], B_squares=squares[start:])
            out[start:end] += K_rows @ V[start:]
            out[end:] += K_rows[:, end - start:].T @ V[start:end]
        return out + shift * V if shift else out
    return apply


# ------------------------------------------------------------------------------------------ planning
def available_memory_bytes(device: torch.device | str = "cpu") -> int | None:
    """Free memory: MemAvailable from /proc/meminfo on the CPU (None where it cannot be read), the free
    memory of a CUDA device."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_bytes(solver: str, n: int, d: int, outputs: int, precondition_rank: int = PRECONDITION_RANK,
               store: bool = True) -> int:
    """Estimated peak memory of a solve beyond what the caller already holds: the n x n matrix (if any),
    X in the working dtypes, one block of kernel rows, the factorization's panel and CG's vectors."""
    vectors = 10 * n * outputs * 8 + n * d * 8            # Y, alpha, CG's r, z, p, K p, ...; X in float64
    rows, panel, rank = min(BLOCK, n), min(PANEL, n), min(precondition_rank, n - 1)
    if solver == "cholesky":
        return OVERHEAD_BYTES + vectors + 8 * n * n + 8 * n * panel + 8 * rows * n
    if solver == "mixed":
        return OVERHEAD_BYTES + vectors + 4 * n * n + 4 * n * d + 4 * n * panel + 8 * rows * n
    nystrom = 4 * n * rank * 8
    if store:  # CG on a stored float32 K
        return OVERHEAD_BYTES + vectors + 4 * n * n + 4 * n * d + nystrom + 4 * rows * n
    return OVERHEAD_BYTES + vectors + nystrom + 8 * rows * n


def _gib(size: float) -> str:
    return f"{size / 2 ** 30:.1f} GiB"


@dataclass
class Plan:
    """How a kernel system will be solved.

    Args:
        solver: cholesky, mixed or cg.
        store: cg only: K kept in float32 (else recomputed at every product).
        peak_bytes: the estimated peak memory.
        budget_bytes: the memory allowed (None: no limit known).
    """

    solver: str        # cholesky, mixed or cg
    store: bool        # cg only: K kept in float32 (else recomputed at every product)
    peak_bytes: int    # the estimate
    budget_bytes: int | None


def plan_solve(solver: str, n: int, d: int, outputs: int, budget_bytes: int | None = None,
               precondition_rank: int = PRECONDITION_RANK, device: torch.device | str = "cpu") -> Plan:
    """The solver for ``n`` points (``auto``: float64 Cholesky, then mixed precision, then CG, the first
    that fits), or a one-line RethinkgenError naming the size, the estimate and the memory available.
    ``budget_bytes`` defaults to the memory available now."""
    budget = available_memory_bytes(device) if budget_bytes is None else budget_bytes
    fits = lambda size: budget is None or size <= budget
    candidates = ("cholesky", "mixed", "cg") if solver == "auto" else (solver,)
    options = []
    for name in candidates:
        for store in ((True, False) if name == "cg" else (True,)):
            size = peak_bytes(name, n, d, outputs, precondition_rank, store)
            if fits(size):
                return Plan(name, store, size, budget)
            options.append(size)
    where = "GPU memory" if torch.device(device).type == "cuda" else "memory"
    what = "every solver needs at least" if solver == "auto" else f"the {solver} solver needs about"
    raise RethinkgenError(f"n = {n:,}: {what} {_gib(min(options))} but only {_gib(budget)} of {where} is "
                          f"available; use a smaller --subset, free memory or raise --memory-budget")


# --------------------------------------------------------------------------------------------- fits
@dataclass
class KernelFit:
    """A solved kernel system (K + l2 I) alpha = Y, as ``interpolate`` returns it.

    Args:
        X: the training points, ``[n, d]`` float64.
        alpha: the coefficients, ``[n, outputs]``.
        kernel: linear, rbf or laplacian.
        bandwidth: the kernel's bandwidth.
        l2: the ridge term.
        solver: the solver that ran.
        norm: the RKHS norm of the fitted function, sqrt(trace(alpha^T K alpha)).
        relative_residual: |K alpha - Y| / |Y|.
        iterations: the iterative solver's iterations (0 for a direct solve).
        seconds: the solve's wall time.
        weights: the linear kernel's w = X^T alpha, when solved in the primal.
        converged: whether the residual reached ``tol`` (always true for direct solves).
        tol: the tolerance asked for.
        precision: what held K and computed the residual.
        device: where the solve ran.
        estimated_peak_bytes: the memory estimate the solve was planned with.
        shift: the diagonal shift of the float32 preconditioner, if its Cholesky failed.
        phases: seconds per phase: build, factorize, solve / refine.
        fitted: K alpha at the training points (= Y - the residual), in float64.
    """

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
    converged: bool = True               # the residual reached the tolerance (always true for direct solves)
    tol: float = 0.0
    precision: str = "float64"           # what held K and computed the residual
    device: str = "cpu"
    estimated_peak_bytes: int = 0
    shift: float = 0.0                   # diagonal shift of the float32 preconditioner, if its Cholesky failed
    phases: dict = field(default_factory=dict)  # seconds per phase: build, factorize, solve / refine
    fitted: torch.Tensor | None = None   # K alpha at the training points (= Y - the residual), in float64

    def decision(self, X, block: int | None = None) -> np.ndarray:
        """sum_i alpha_i k(x_i, x) for each row of X, ``block`` rows at a time, in float64."""
        X, block = _as_tensor(X).to(self.X.device), block or BLOCK
        if self.weights is not None:
            return (X @ self.weights).cpu().numpy()
        squares = self.X.square().sum(1)
        return torch.cat([kernel_block(X[s:s + block], self.X, self.kernel, self.bandwidth, B_squares=squares)
                          @ self.alpha for s in range(0, len(X), block)]).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """Class predictions (argmax over one-hot outputs)."""
        return self.decision(X).argmax(1)


def one_hot(labels: ArrayLike, num_classes: int | None = None) -> np.ndarray:
    """Labels as one-hot rows, float64 ``[n, num_classes]``.

    Args:
        labels: integer labels, ``[n]``.
        num_classes: the number of columns (None: the largest label + 1).
    """
    labels = np.asarray(labels)
    return np.eye(num_classes or int(labels.max()) + 1)[labels]


def interpolate(X: ArrayLike, Y: ArrayLike, kernel: str = "rbf", bandwidth: float | str | None = None, l2: float = 0.0,
                solver: str = "auto", tol: float = 1e-6, max_iter: int = 2000, budget_bytes: int | None = None,
                precondition_rank: int = PRECONDITION_RANK, seed: int = 0, progress: bool = False,
                device: str = "cpu", factorization: str = "auto") -> KernelFit:
    """Solve (K + l2 I) alpha = Y: the minimum-norm kernel interpolant (or ridge fit) of ``Y`` on ``X``.

    Args:
        X: [n, ...] inputs (flattened).
        Y: [n, K] targets (e.g. one-hot) or [n] real targets.
        kernel: linear, rbf or laplacian.
        bandwidth: a number, or half-median (default), median or recipe (see ``choose_bandwidth``).
        l2: the ridge term (0 = interpolate).
        solver: auto, cholesky, mixed or cg (module docstring).
        tol: the relative residual |K alpha - Y| / |Y| at which the iterative solvers stop.
        max_iter: the iterative solvers' iteration cap.
        budget_bytes: memory allowed (default: what is available now); a solve that cannot fit is refused
            before anything large is allocated.
        precondition_rank: the Nystrom rank for cg.
        seed: seeds the Nystrom preconditioner's random directions.
        progress: show progress bars.
        device: where the matrix lives (cpu, cuda, cuda:1).
        factorization: auto, blocked (with progress) or lapack (see ``cholesky_in_place``).

    Returns:
        A KernelFit: ``decision(X)`` gives the fitted function; ``norm`` its RKHS norm;
        ``relative_residual`` how exactly it interpolates and ``converged`` whether that met ``tol`` (direct
        solves always do).
    """
    device = _check_solve_options(kernel, solver, factorization, l2, precondition_rank, tol, max_iter, device)
    X = _as_tensor(X)
    Y = torch.as_tensor(np.asarray(Y, dtype=np.float64))
    Y = Y[:, None] if Y.ndim == 1 else Y
    if len(X) != len(Y) or len(X) == 0:
        raise RethinkgenError(f"{len(X)} points but {len(Y)} targets")
    bandwidth = choose_bandwidth(X, bandwidth) if kernel != "linear" else 1.0
    n = len(X)
    if kernel == "linear" and n > X.shape[1]:
        return _linear_primal(X, Y, l2)
    plan = plan_solve(solver, n, X.shape[1], Y.shape[1], budget_bytes, precondition_rank, device)
    X, Y = X.to(device), Y.to(device)
    started = time.perf_counter()
    common = {"kernel": kernel, "bandwidth": bandwidth, "l2": l2, "progress": progress}
    if plan.solver == "cholesky":
        fit = _solve_cholesky(X, Y, factorization=factorization, **common)
    elif plan.solver == "mixed":
        fit = _solve_mixed(X, Y, tol=tol, max_iter=max_iter, factorization=factorization, **common)
    else:
        fit = _solve_nystrom_cg(X, Y, tol=tol, max_iter=max_iter, store=plan.store, rank=precondition_rank,
                                seed=seed, **common)
    fit.seconds, fit.tol, fit.device = time.perf_counter() - started, tol, str(device)
    fit.estimated_peak_bytes = plan.peak_bytes
    return fit


def _check_solve_options(kernel: str, solver: str, factorization: str, l2: float, precondition_rank: int,
                         tol: float, max_iter: int, device: str) -> torch.device:
    """Refuse a bad option of ``interpolate`` in one line; returns the device to solve on."""
    if kernel not in KERNELS:
        raise choice_error("kernel", kernel, KERNELS)
    if solver not in SOLVERS:
        raise choice_error("solver", solver, SOLVERS)
    if factorization not in FACTORIZATIONS:
        raise choice_error("factorization", factorization, FACTORIZATIONS)
    number("l2", l2, 0)
    integer("precondition rank", precondition_rank, 0)
    number("tolerance", tol, 0, 1, low_open=True, high_open=True)
    integer("max_iter", max_iter, 1)
    try:
        device = torch.device(device)
    except RuntimeError:
        raise RethinkgenError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RethinkgenError("device cuda requested but torch sees no CUDA device")
    return device


def _finish(X, Y, alpha, residual_vector, solver, precision, iterations, converged, phases, kernel, bandwidth,
            l2, shift=0.0) -> KernelFit:
    """KernelFit from alpha and its system residual Y - (K + l2 I) alpha. The reported residual is that of
    the interpolation, |K alpha - Y| / |Y| (the system's plus l2 alpha), and norm^2 = alpha^T K alpha
    = alpha^T (Y - residual) - l2 |alpha|^2, so no further product with K is needed."""
    interpolation = residual_vector + l2 * alpha
    residual = float(interpolation.norm() / Y.norm().clamp_min(1e-300))
    squared_norm = (alpha * (Y - residual_vector)).sum() - l2 * alpha.square().sum()
    return KernelFit(X, alpha, kernel, bandwidth, l2, solver, float(squared_norm.clamp_min(0).sqrt()), residual,
                     iterations, 0.0, converged=converged, precision=precision, shift=shift, phases=phases,
                     fitted=Y - interpolation)


def _solve_cholesky(X, Y, kernel, bandwidth, l2, factorization, progress) -> KernelFit:
    """Float64 K, factorized in place; the residual is measured with K recomputed in blocks."""
    phases = {}
    clock = time.perf_counter()
    K = kernel_matrix(X, kernel, bandwidth, shift=l2, progress=progress)
    phases["build"] = time.perf_counter() - clock
    clock = time.perf_counter()
    try:
        cholesky_in_place(K, factorization, progress=progress)
    except NotPositiveDefinite:  # singular (e.g. linear kernel, n > rank): minimum-norm least squares
        del K
        return _solve_lstsq(X, Y, kernel, bandwidth, l2, phases)
    phases["factorize"] = time.perf_counter() - clock
    clock = time.perf_counter()
    alpha = cholesky_solve(K, Y)
    del K
    residual = Y - recomputed_matvec(X, kernel, bandwidth, l2)(alpha)
    phases["solve"] = time.perf_counter() - clock
    return _finish(X, Y, alpha, residual, "cholesky", "float64", 0, True, phases, kernel, bandwidth, l2)


def _solve_lstsq(X, Y, kernel, bandwidth, l2, phases) -> KernelFit:
    K = kernel_matrix(X, kernel, bandwidth, shift=l2).cpu().numpy()
    alpha = torch.from_numpy(scipy.linalg.lstsq(K, Y.cpu().numpy(), lapack_driver="gelsd")[0]).to(X.device)
    residual = Y - torch.from_numpy(K).to(X.device) @ alpha
    return _finish(X, Y, alpha, residual, "lstsq", "float64", 0, True, phases, kernel, bandwidth, l2)


def _solve_mixed(X, Y, kernel, bandwidth, l2, tol, max_iter, factorization, progress) -> KernelFit:
    """Float32 K factorized in place, then CG on the float64 system preconditioned by that factor.
    If float32 Cholesky fails, K + shift I is factorized instead (a slightly weaker preconditioner)."""
    phases = {"build": 0.0, "factorize": 0.0}
    mean_diagonal = float(X.square().sum(1).mean()) if kernel == "linear" else 1.0
    for shift in SHIFTS:
        clock = time.perf_counter()
        L = kernel_matrix(X, kernel, bandwidth, dtype=torch.float32, shift=l2 + shift * mean_diagonal,
                          progress=progress)
        phases["build"] += time.perf_counter() - clock
        clock = time.perf_counter()
        try:
            cholesky_in_place(L, factorization, progress=progress)
            phases["factorize"] += time.perf_counter() - clock
            break
        except NotPositiveDefinite:
            phases["factorize"] += time.perf_counter() - clock
            del L
    else:
        raise RethinkgenError(f"K is not positive definite even in float32 with a diagonal shift of "
                              f"{SHIFTS[-1]:g} x its diagonal; use --l2 or a smaller bandwidth")
    clock = time.perf_counter()
    alpha, residual, iterations, converged = _cg_with_progress(
        recomputed_matvec(X, kernel, bandwidth, l2), Y, tol, max_iter, lambda R: cholesky_solve(L, R),
        progress, "refine")
    phases["refine"] = time.perf_counter() - clock
    return _finish(X, Y, alpha, residual, "mixed", "float32 factor, float64 residual", iterations, converged,
                   phases, kernel, bandwidth, l2, shift * mean_diagonal)


def _solve_nystrom_cg(X, Y, kernel, bandwidth, l2, tol, max_iter, store, rank, seed, progress) -> KernelFit:
    """CG preconditioned by a rank-``rank`` Nystrom approximation; K in float32 (``store``) or recomputed."""
    phases = {}
    clock = time.perf_counter()
    if store:
        K32 = kernel_matrix(X, kernel, bandwidth, dtype=torch.float32, progress=progress)
        product = lambda v: (K32 @ v.float()).double()
        precision = "float32 K"
    else:
        product = recomputed_matvec(X, kernel, bandwidth)
        precision = "float64 K recomputed"
    phases["build"] = time.perf_counter() - clock
    clock = time.perf_counter()
    rank = min(rank, len(X) - 1)
    precondition = nystrom_preconditioner(product, len(X), rank, l2, seed, X.device) if rank > 0 \
        else (lambda r: r)
    phases["precondition"] = time.perf_counter() - clock
    clock = time.perf_counter()
    alpha, residual, iterations, converged = _cg_with_progress(lambda v: product(v) + l2 * v, Y, tol, max_iter, precondition, progress,
                                                               "CG")
    phases["solve"] = time.perf_counter() - clock
    return _finish(X, Y, alpha, residual, "cg", precision, iterations, converged, phases, kernel, bandwidth, l2)


def _cg_with_progress(apply, Y, tol, max_iter, precondition, progress, label):
    """conjugate_gradients with a progress bar whose total (hence ETA) is re-estimated at every iteration
    from the residual's rate of decrease so far."""
    history = [1.0]
    with tqdm(total=max_iter, disable=not progress, desc=f"{label} n={len(Y):,}", unit="it", leave=False) as bar:
        def report(relative_residual: float) -> None:
            history.append(relative_residual)
            rate = (relative_residual / history[0]) ** (1 / (len(history) - 1))
            if 0 < rate < 1 and relative_residual > tol:
                bar.total = min(max_iter, len(history) - 1 + math.ceil(math.log(tol / relative_residual)
                                                                         / math.log(rate)))
            bar.set_postfix(residual=f"{relative_residual:.1e}", refresh=False)
            bar.update()
        return conjugate_gradients(apply, Y, tol, max_iter, precondition, report)


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
                     time.perf_counter() - started, weights=w, converged=residual < 1e-6, fitted=X @ w)


def nystrom_preconditioner(matvec, n: int, rank: int, shift: float, seed: int = 0, device="cpu"):
    """The inverse of P = U (L + shift) U^T / (l_min + shift) + (I - U U^T), where U L U^T is a randomized
    Nystrom approximation of K (one pass of K over ``rank`` random directions, numerically stable form of
    Tropp et al. 2017). P^-1 (K + shift I) has its top ``rank`` eigenvalues squeezed to about l_min + shift."""
    generator = torch.Generator().manual_seed(seed)
    omega, _ = torch.linalg.qr(torch.randn(n, rank, dtype=torch.float64, generator=generator).to(device))
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


def conjugate_gradients(apply, Y: torch.Tensor, tol: float, max_iter: int, precondition=lambda r: r,
                        report=lambda relative_residual: None) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """Preconditioned CG on every column of Y at once (each column keeps its own step sizes), from zero.

    Stops when |r| <= tol |Y| over all columns together (the relative residual the fit reports).
    The direction update uses the flexible (Polak-Ribiere) form, robust to a preconditioner applied in
    lower precision. Returns (alpha, residual Y - A alpha, iterations, converged).
    """
    alpha = torch.zeros_like(Y)
    r = Y.clone()
    target = tol * float(Y.norm())
    z = precondition(r)
    p = z.clone()
    rz = (r * z).sum(0)
    for iteration in range(1, max_iter + 1):
        Ap = apply(p)
        step = rz / (p * Ap).sum(0).clamp_min(1e-300)
        alpha += step * p
        previous = r.clone()
        r -= step * Ap
        residual = float(r.norm())
        report(residual / max(float(Y.norm()), 1e-300))
        if residual <= target:
            return alpha, r, iteration, True
        z = precondition(r)
        new_rz = (r * z).sum(0)
        p = z + ((new_rz - (z * previous).sum(0)) / rz.clamp_min(1e-300)).clamp_min(0) * p
        rz = new_rz
    return alpha, r, max_iter, False


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
