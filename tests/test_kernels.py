"""Section 5: interpolating kernel solutions, their norms, and SGD's pull to the minimum-norm solution."""

import numpy as np
import pytest

from rethinkgen.data import load
from rethinkgen.errors import RethinkgenError
from rethinkgen.theory.kernels import (interpolate, kernel_block, kernel_matrix, median_bandwidth, one_hot,
                                       sgd_from_zero, _as_tensor)


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
    auto = interpolate(X, Y, kernel="laplacian", budget_bytes=0)
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
    ({"l2": -1.0}, "l2 -1.0 must be >= 0"),
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

    monkeypatch.setattr(kernels, "available_memory_bytes", lambda: 10_000)
    X, y = digits[0][:50], digits[1][:50]
    with pytest.raises(RethinkgenError, match=r"the float32 kernel matrix for n = 50 needs .* GiB but only 0.0 GiB"):
        interpolate(X, one_hot(y), solver="cg")
