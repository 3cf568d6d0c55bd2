"""Section 5: interpolating kernel solutions, their norms, and SGD's pull to the minimum-norm solution."""

import numpy as np
import pytest
import torch

from rethinkgen.data import load
from rethinkgen.errors import RethinkgenError
from rethinkgen.theory.kernels import (
    NotPositiveDefinite,
    _as_tensor,
    cholesky_in_place,
    cholesky_solve,
    choose_bandwidth,
    interpolate,
    kernel_block,
    kernel_matrix,
    median_bandwidth,
    one_hot,
    peak_bytes,
    sgd_from_zero,
)


@pytest.fixture(scope="module")
def digits():
    d = load("digits").subset(400, seed=0, n_test=200)
    return (d.x_train.reshape(400, -1) / 255.0, d.y_train, d.x_test.reshape(200, -1) / 255.0, d.y_test)


@pytest.mark.parametrize("kernel", ["rbf", "laplacian"])
def test_gaussian_and_laplacian_kernels_interpolate_any_labels(digits, kernel):
    X, y, X_test, y_test = digits
    random_labels = np.random.default_rng(0).integers(0, 10, len(y))
    for labels in (y, random_labels):
        fit = interpolate(X, one_hot(labels, 10), kernel=kernel)
        assert fit.solver == "cholesky" and fit.relative_residual < 1e-8
        assert (fit.predict(X) == labels).all()
    true_fit = interpolate(X, one_hot(y, 10), kernel=kernel)
    random_fit = interpolate(X, one_hot(random_labels, 10), kernel=kernel)
    assert (true_fit.predict(X_test) == y_test).mean() > 0.85
    assert (random_fit.predict(X_test) == y_test).mean() < 0.25
    assert random_fit.norm > 1.5 * true_fit.norm  # fitting noise needs a larger norm


def test_norm_is_the_rkhs_norm(digits):
    X, y, _, _ = digits
    fit = interpolate(X[:100], one_hot(y[:100], 10), kernel="rbf", bandwidth=2.0)
    K = kernel_block(_as_tensor(X[:100]), _as_tensor(X[:100]), "rbf", 2.0).numpy()
    alpha = fit.alpha.numpy()
    assert fit.norm == pytest.approx(np.sqrt(np.trace(alpha.T @ K @ alpha)), rel=1e-9)


def test_conjugate_gradients_agree_with_cholesky(digits):
    X, y, X_test, _ = digits
    Y = one_hot(y, 10)
    exact = interpolate(X, Y, kernel="laplacian", solver="cholesky")
    iterative = interpolate(X, Y, kernel="laplacian", solver="cg", tol=1e-8, max_iter=3000)
    # K is stored in float32 for CG, which bounds the attainable residual near float32's precision
    assert iterative.solver == "cg" and iterative.relative_residual < 1e-5
    np.testing.assert_allclose(iterative.decision(X_test), exact.decision(X_test), atol=1e-3)  # float32 K
    # a budget that only the CG with K recomputed at every product fits
    budget = peak_bytes("cg", len(X), X.shape[1], 10, precondition_rank=10, store=False)
    auto = interpolate(X, Y, kernel="laplacian", budget_bytes=budget, precondition_rank=10, max_iter=3000)
    assert auto.solver == "cg"


def test_linear_kernel_solution_is_the_pseudo_inverse_solution():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((30, 80)), rng.standard_normal(30)  # n < d: infinitely many interpolants
    fit = interpolate(X, y, kernel="linear")
    new = rng.standard_normal((10, 80))
    w = np.linalg.pinv(X) @ y
    np.testing.assert_allclose(fit.decision(new)[:, 0], new @ w, atol=1e-8)
    assert fit.norm == pytest.approx(np.linalg.norm(w), rel=1e-8)
    tall = interpolate(rng.standard_normal((200, 10)), rng.standard_normal(200), kernel="linear")
    assert tall.solver == "primal-lstsq" and tall.relative_residual > 0.1  # n > d: cannot interpolate


def test_l2_regularization_trades_exactness_for_a_smaller_norm(digits):
    X, y, _, _ = digits
    Y = one_hot(np.random.default_rng(2).integers(0, 10, len(y)), 10)
    exact, ridge = interpolate(X, Y, kernel="rbf"), interpolate(X, Y, kernel="rbf", l2=0.1)
    assert ridge.norm < exact.norm and ridge.relative_residual > 1e-3 > exact.relative_residual


def test_sgd_started_at_zero_converges_to_the_minimum_norm_interpolant():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((20, 60)), rng.standard_normal(20)
    w, history = sgd_from_zero(X, y, epochs=300)
    assert history[-1]["loss"] < 1e-10
    assert history[-1]["distance_to_min_norm"] < 1e-5 * history[0]["min_norm"]
    assert np.linalg.norm(w) == pytest.approx(np.linalg.norm(np.linalg.pinv(X) @ y), rel=1e-5)
    distances = [row["distance_to_min_norm"] for row in history]
    assert distances[-1] < distances[10] < distances[0]


def test_median_bandwidth_and_blocked_kernel_matrix():
    assert median_bandwidth(np.array([[0.0], [1.0], [3.0]])) == pytest.approx(2.0)
    X = _as_tensor(np.random.default_rng(4).random((50, 3)))
    full = kernel_block(X, X, "rbf", 0.7)
    np.testing.assert_allclose(kernel_matrix(X, "rbf", 0.7, block=7).numpy(), full.numpy(), rtol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    ({"kernel": "poly"}, "unknown kernel 'poly'; allowed: linear, rbf, laplacian"),
    ({"solver": "svd"}, "unknown solver 'svd'"),
    ({"l2": -1.0}, "l2 -1.0 must be a number >= 0"),
    ({"bandwidth": 0.0}, "bandwidth 0.0 must be > 0"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(RethinkgenError, match=message.replace(".", r"\.")):
        interpolate(np.random.rand(5, 2), np.random.rand(5), **kwargs)
    with pytest.raises(RethinkgenError, match="5 points but 4 targets"):
        interpolate(np.random.rand(5, 2), np.random.rand(4))


def test_nystrom_preconditioner_speeds_up_cg_to_the_same_solution(digits):
    X, y = digits[0][:300], digits[1][:300]
    Y = one_hot(y)
    exact = interpolate(X, Y, kernel="rbf", solver="cholesky")
    plain = interpolate(X, Y, kernel="rbf", solver="cg", precondition_rank=0, tol=1e-5, max_iter=5000)
    preconditioned = interpolate(X, Y, kernel="rbf", solver="cg", precondition_rank=100, tol=1e-5, max_iter=5000)
    assert preconditioned.iterations < plain.iterations / 3
    for fit in (plain, preconditioned):
        assert fit.relative_residual < 1e-3
        assert abs(fit.norm - exact.norm) / exact.norm < 1e-2
        assert (fit.predict(X) == y).all()


def test_bad_precondition_rank_is_refused(digits):
    X, y = digits[0][:20], digits[1][:20]
    with pytest.raises(RethinkgenError, match="precondition rank -1"):
        interpolate(X, one_hot(y), solver="cg", precondition_rank=-1)


def test_a_kernel_matrix_that_cannot_fit_in_memory_is_refused_up_front(digits, monkeypatch):
    from rethinkgen.theory import kernels

    monkeypatch.setattr(kernels, "available_memory_bytes", lambda device="cpu": 10_000)
    X, y = digits[0][:50], digits[1][:50]
    with pytest.raises(RethinkgenError, match=r"n = 50: the cg solver needs about 0.3 GiB but only 0.0 GiB of memory"):
        interpolate(X, one_hot(y), solver="cg")


# ---------------------------------------------------------------- the solvers at every size, forced small
def _reference(X, Y, kernel, bandwidth):
    """alpha from a float64 direct solve of the full K (scipy), the yardstick for every path."""
    import scipy.linalg

    K = kernel_block(_as_tensor(X), _as_tensor(X), kernel, bandwidth).numpy()
    return scipy.linalg.solve(K, Y, assume_a="pos"), K


@pytest.mark.parametrize("kernel", ["rbf", "laplacian"])
def test_auto_picks_each_path_by_memory_budget_and_each_matches_a_float64_direct_solve(digits, monkeypatch, kernel):
    from rethinkgen.theory import kernels

    monkeypatch.setattr(kernels, "BLOCK", 96)   # several blocks of rows and panels even at n = 400
    monkeypatch.setattr(kernels, "PANEL", 64)
    X, y, _, _ = digits
    Y = one_hot(y, 10)
    alpha, K = _reference(X, Y, kernel, 3.0)
    n, d = X.shape
    budgets = {"cholesky": None, "mixed": peak_bytes("mixed", n, d, 10),
               "cg": peak_bytes("cg", n, d, 10, precondition_rank=50, store=False)}
    assert budgets["cg"] < budgets["mixed"] < peak_bytes("cholesky", n, d, 10)
    for expected, budget in budgets.items():
        fit = interpolate(X, Y, kernel=kernel, bandwidth=3.0, budget_bytes=budget, precondition_rank=50,
                          tol=1e-10, max_iter=5000)
        assert fit.solver == expected and fit.converged
        assert fit.relative_residual < 1e-9  # float64 accuracy, also for the float32 factor refined by CG
        np.testing.assert_allclose(fit.alpha.numpy(), alpha, rtol=1e-6, atol=1e-6 * np.abs(alpha).max())
        assert fit.norm == pytest.approx(np.sqrt(np.trace(alpha.T @ K @ alpha)), rel=1e-8)
        assert (fit.predict(X) == y).all()
    mixed = interpolate(X, Y, kernel=kernel, bandwidth=3.0, solver="mixed", tol=1e-10)
    assert mixed.precision == "float32 factor, float64 residual" and 1 <= mixed.iterations <= 10
    assert set(mixed.phases) == {"build", "factorize", "refine"}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_blocked_cholesky_equals_lapack_in_place(dtype):
    X = torch.randn(300, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    K = kernel_block(X, X, "rbf", 4.0).to(dtype)
    expected = torch.linalg.cholesky(K)
    for method in ("blocked", "lapack"):
        A = K.clone()
        address = A.data_ptr()
        cholesky_in_place(A, method, panel=64)  # 300 = 4 full panels and a partial one
        assert A.data_ptr() == address
        torch.testing.assert_close(A.tril(), expected, rtol=0, atol=1e-10 if dtype == torch.float64 else 1e-5)
        np.testing.assert_allclose(cholesky_solve(A, torch.eye(300, 2, dtype=torch.float64)).numpy(),
                                   torch.cholesky_solve(torch.eye(300, 2, dtype=dtype), expected).double().numpy(),
                                   rtol=1e-3, atol=1e-5)


def test_cholesky_that_meets_a_non_positive_pivot_says_where():
    A = torch.ones(5, 5, dtype=torch.float64)  # rank one
    for method in ("blocked", "lapack"):
        with pytest.raises(NotPositiveDefinite, match="pivot 2 of 5"):
            cholesky_in_place(A.clone(), method, panel=2)


def test_mixed_precision_shifts_a_preconditioner_that_float32_cannot_factorize():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    X[1] = X[0] + 3e-5 * rng.standard_normal(5)  # a near-duplicate: K's smallest eigenvalue ~2e-10
    Y = rng.standard_normal((200, 3))
    fit = interpolate(X, Y, bandwidth=1.0, solver="mixed", tol=1e-8)
    assert fit.shift > 0 and fit.converged and fit.relative_residual < 1e-8  # float32 failed; CG still exact
    alpha, _ = _reference(X, Y, "rbf", 1.0)
    np.testing.assert_allclose(fit.alpha.numpy(), alpha, rtol=1e-4, atol=1e-4 * np.abs(alpha).max())


def test_an_iterative_solve_that_stops_short_says_so(digits):
    X, y = digits[0][:200], digits[1][:200]
    fit = interpolate(X, one_hot(y, 10), solver="cg", precondition_rank=0, max_iter=3)
    assert fit.iterations == 3 and not fit.converged and fit.relative_residual > 1e-6
    exact = interpolate(X, one_hot(y, 10), solver="cg", precondition_rank=50, max_iter=2000, tol=1e-5)
    assert exact.converged and exact.relative_residual <= 1e-5


def test_memory_refusal_names_the_size_the_estimate_and_what_is_available(digits, monkeypatch):
    from rethinkgen.theory import kernels

    X, y = digits[0][:300], digits[1][:300]
    estimate = peak_bytes("cg", 300, 64, 10, store=False)
    with pytest.raises(RethinkgenError, match=r"^n = 300: every solver needs at least 0.3 GiB but only 0.2 GiB "
                                              r"of memory is available"):
        interpolate(X, one_hot(y), budget_bytes=estimate - 2 ** 26)
    monkeypatch.setattr(kernels, "available_memory_bytes", lambda device="cpu": 2 ** 27)  # the default budget
    with pytest.raises(RethinkgenError, match="only 0.1 GiB of memory is available"):
        interpolate(X, one_hot(y))


def test_bandwidth_rules():
    X = np.array([[0.0], [1.0], [3.0]])
    assert choose_bandwidth(X, "median") == pytest.approx(2.0)
    assert choose_bandwidth(X, None) == choose_bandwidth(X, "half-median") == pytest.approx(1.0)
    assert choose_bandwidth(X, "recipe") == 5.0  # exp(-0.02 |x - x'|^2) = exp(-|x - x'|^2 / (2 * 5^2))
    K = kernel_block(_as_tensor(X), _as_tensor(X), "rbf", 5.0)
    assert float(K[0, 2]) == pytest.approx(np.exp(-0.02 * 9))
    for bad, message in (("wide", "unknown bandwidth 'wide'"), (-1.0, "bandwidth -1.0 must be > 0"),
                         (float("nan"), "bandwidth nan must be > 0")):
        with pytest.raises(RethinkgenError, match=message):
            choose_bandwidth(X, bad)


def test_device_plumbing(digits):
    X, y = digits[0][:100], digits[1][:100]
    fit = interpolate(X, one_hot(y, 10), device="cpu", solver="mixed")
    assert fit.device == "cpu" and fit.converged
    with pytest.raises(RethinkgenError, match="unknown device 'gpu0'"):
        interpolate(X, one_hot(y, 10), device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(RethinkgenError, match="device cuda requested but torch sees no CUDA device"):
            interpolate(X, one_hot(y, 10), device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_path_on_cuda_matches_the_cpu(digits):
    X, y, _, _ = digits
    Y = one_hot(y, 10)
    cpu = interpolate(X, Y, bandwidth=3.0, solver="cholesky")
    for solver in ("cholesky", "mixed", "cg"):
        fit = interpolate(X, Y, bandwidth=3.0, solver=solver, device="cuda", tol=1e-9, max_iter=5000)
        assert fit.device.startswith("cuda") and fit.converged
        np.testing.assert_allclose(fit.alpha.cpu().numpy(), cpu.alpha.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"tol": 0.0}, "tolerance 0.0 is outside (0, 1)"),
    ({"max_iter": 0}, "max_iter 0 must be an integer >= 1"),
    ({"factorization": "qr"}, "unknown factorization 'qr'"),
])
def test_bad_solver_settings(kwargs, message):
    with pytest.raises(RethinkgenError, match=message.replace("(", r"\(").replace(")", r"\)")):
        interpolate(np.random.rand(5, 2), np.random.rand(5), **kwargs)


def test_recomputed_products_use_symmetry_and_equal_the_full_matrix(digits):
    from rethinkgen.theory.kernels import recomputed_matvec

    X = _as_tensor(digits[0][:250])
    V = torch.randn(250, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for kernel, tolerance in (("rbf", 1e-12), ("laplacian", 1e-6)):  # |x - x'| = sqrt(rounded |x - x'|^2)
        K = kernel_block(X, X, kernel, 2.0)
        for block in (32, 250, 1000):  # ragged last block, one block, more than n
            np.testing.assert_allclose(recomputed_matvec(X, kernel, 2.0, shift=0.5, block=block)(V).numpy(),
                                       (K @ V + 0.5 * V).numpy(), rtol=tolerance, atol=tolerance)


def test_fitted_values_are_k_alpha(digits):
    X, y = digits[0][:200], digits[1][:200]
    for solver, tolerance in (("cholesky", 1e-9), ("mixed", 1e-9), ("cg", 1e-3)):  # cg here: float32 K products
        fit = interpolate(X, one_hot(y, 10), solver=solver, l2=0.01, tol=1e-9, max_iter=3000)
        np.testing.assert_allclose(fit.fitted.numpy(), fit.decision(X), atol=tolerance)
