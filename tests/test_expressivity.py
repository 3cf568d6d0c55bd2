"""Theorem 1: the 2n + d network fits any targets exactly, and its structured solve matches Lemma 1."""

import numpy as np
import pytest
import torch

from rethinkgen.cli import main
from rethinkgen.errors import RethinkgenError
from rethinkgen.theory import expressivity
from rethinkgen.theory.expressivity import class_accuracy, count_for, memorize


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    return rng.random((300, 7)), rng.standard_normal(300)


def test_fits_real_targets_exactly_with_2n_plus_d_weights(points):
    X, y = points
    fit = memorize(X, y)
    assert fit.parameter_count == 2 * 300 + 7 == count_for(300, 7)
    assert fit.max_residual < 1e-9
    network_output = fit.network(torch.from_numpy(X)).detach().numpy()[:, 0]
    np.testing.assert_allclose(network_output, y, atol=1e-7)


def test_one_hot_targets_classify_every_point_with_d_plus_n_plus_nk_weights():
    rng = np.random.default_rng(1)
    X, labels = rng.random((500, 12)), rng.integers(0, 10, 500)
    fit = memorize(X, np.eye(10)[labels])
    assert fit.parameter_count == 12 + 500 + 500 * 10
    assert class_accuracy(fit.network, X, labels) == 1.0


def test_the_structured_solve_is_lemma_1s_triangular_system(points):
    X, y = points
    fit = memorize(X[:60], y[:60])
    a, b, w = (p.detach().numpy() for p in (fit.network.a, fit.network.b, fit.network.w))
    x = np.sort(X[:60] @ a)
    assert np.all(b[:-1] < x[:-1]) and np.all(x[:-1] < b[1:]) and b[-1] < x[-1]  # interleaved
    A = np.maximum(x[:, None] - b[None, :], 0)
    assert np.allclose(A, np.tril(A))                                            # lower triangular
    assert np.linalg.eigvals(A).real.min() == pytest.approx((x - b).min())      # Lemma 1's eigenvalue
    dense = np.linalg.solve(A, np.asarray(y[:60])[np.argsort(X[:60] @ a)])
    np.testing.assert_allclose(w[:, 0], dense, rtol=1e-6, atol=1e-6)


def test_fast_prediction_and_chunked_network_agree_on_new_points(points, monkeypatch):
    X, y = points
    fit = memorize(X, y)
    new = torch.from_numpy(np.random.default_rng(5).random((100, 7)))
    literal = fit.network(new).detach()
    np.testing.assert_allclose(fit.network.predict(new).numpy(), literal.numpy(), rtol=1e-7, atol=1e-6)
    monkeypatch.setattr(expressivity, "CHUNK_ELEMENTS", 1000)  # 10 units at a time for 100 points
    np.testing.assert_allclose(fit.network(new).detach().numpy(), literal.numpy(), rtol=1e-9, atol=1e-9)


def test_duplicate_points_with_different_targets_are_named():
    X = np.random.default_rng(2).random((20, 3))
    X[13] = X[4]
    with pytest.raises(RethinkgenError, match="points 4 and 13 are identical but have different targets"):
        memorize(X, np.arange(20.0))
    y = np.arange(20.0)
    y[13] = y[4]
    with pytest.raises(RethinkgenError, match="1 duplicates"):
        memorize(X, y)


@pytest.mark.parametrize("X, y, message", [
    (np.zeros((3, 2)), np.zeros(4), "3 points but 4 targets"),
    (np.full((2, 2), np.nan), np.zeros(2), "finite"),
])
def test_bad_inputs(X, y, message):
    with pytest.raises(RethinkgenError, match=message):
        memorize(X, y)


def test_a_hundred_thousand_points_fit_to_rounding_error():
    rng = np.random.default_rng(3)
    X, y = rng.random((100_000, 10)), rng.integers(0, 10, 100_000).astype(float)
    fit = memorize(X, y, check_duplicates=False)
    assert fit.parameter_count == 200_010
    assert fit.max_residual < 0.01  # labels are 0..9: far below what would change a rounded class


def test_memorize_cli_fits_random_labels_of_digits(capsys):
    assert main(["theory", "memorize", "--dataset", "digits", "--label-noise", "1"]) == 0
    out = capsys.readouterr().out
    assert "n = 1,347 points, d = 64 dimensions" in out and "parameters 14,881" in out
    assert "train accuracy 1.0000" in out
    assert main(["theory", "memorize", "--label-noise", "1.5"]) == 2
    assert "label noise 1.5 is outside [0, 1]" in capsys.readouterr().err
