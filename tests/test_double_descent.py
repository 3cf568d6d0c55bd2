"""Random-features double descent: interpolation past N = n, the minimum-norm solution, the peak, storage."""

import csv
import json

import numpy as np
import pytest

from rethinkgen import data
from rethinkgen.errors import RethinkgenError
from rethinkgen.report.document import build_sections
from rethinkgen.theory.double_descent import (
    RandomFeatures,
    default_widths,
    double_descent,
    feature_inputs,
    least_squares,
    save_double_descent,
)
from rethinkgen.theory.kernels import one_hot


@pytest.fixture(scope="module")
def problem():
    """Random ReLU features of 80 digits and their one-hot labels."""
    subset = data.load("digits").subset(80, seed=0, n_test=40)
    X, _ = feature_inputs(subset.x_train, subset.x_test, "relu")
    return X, one_hot(subset.y_train, 10), RandomFeatures("relu", X.shape[1], 800, seed=0)


@pytest.fixture(scope="module")
def noisy_curve():
    return double_descent("digits", n=100, n_test=300, label_noise=0.2, seeds=(0, 1))


def test_default_widths_span_n_over_20_to_20n_and_contain_n():
    widths = default_widths(200)
    assert widths[0] == 10 and widths[-1] == 4000 and 200 in widths
    assert widths == sorted(set(widths)) and len(widths) == 25


@pytest.mark.parametrize("features", ["relu", "fourier"])
def test_at_least_n_features_interpolate(features):
    result = double_descent("digits", n=60, n_test=50, widths=[30, 60, 90, 600], features=features, seeds=(0, 1))
    for row in result.per_seed:
        if row["width"] >= 60:
            assert row["train_error"] == 0 and row["residual"] < 1e-8 and row["train_loss"] < 1e-15
        else:
            assert row["residual"] > 1e-3  # fewer features than points cannot fit one-hot targets
    assert [r["interpolates"] for r in result.rows] == [False, True, True, True]


def test_pseudo_inverse_solution_is_the_minimum_norm_interpolant(problem):
    X, Y, features = problem
    Phi = features.transform(X, 300)  # 80 points, 300 features
    coef = least_squares(Phi, Y)
    explicit = Phi.T @ np.linalg.solve(Phi @ Phi.T, Y)  # the interpolant in the row space of Phi
    np.testing.assert_allclose(coef, explicit, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(coef, np.linalg.pinv(Phi) @ Y, rtol=1e-7, atol=1e-9)
    # any other interpolant adds a null-space component, orthogonal to coef, so its norm is larger
    null_space = np.linalg.svd(Phi)[2][80:].T  # [300, 220]
    other = coef + null_space @ np.random.default_rng(0).standard_normal((220, 10))
    np.testing.assert_allclose(Phi @ other, Y, atol=1e-8)
    assert np.linalg.norm(other) > np.linalg.norm(coef) + 1.0
    assert abs(np.sum(coef * (other - coef))) < 1e-8


@pytest.mark.parametrize("width", [40, 300])
def test_ridge_solution_matches_its_formula_in_both_shapes(problem, width):
    X, Y, features = problem
    Phi = features.transform(X, width)
    ridge = 0.3
    expected = np.linalg.solve(Phi.T @ Phi + ridge * np.eye(width), Phi.T @ Y)
    np.testing.assert_allclose(least_squares(Phi, Y, ridge), expected, rtol=1e-8, atol=1e-10)
    # a vanishing ridge tends to the minimum-norm solution
    np.testing.assert_allclose(least_squares(Phi, Y, 1e-10), least_squares(Phi, Y), rtol=1e-4, atol=1e-6)


def test_features_are_nested_and_seeded(problem):
    X, _, features = problem
    wide, narrow = features.transform(X, 500), features.transform(X, 120)
    np.testing.assert_allclose(wide[:, :120] * np.sqrt(500 / 120), narrow)
    again = RandomFeatures("relu", X.shape[1], 800, seed=0).transform(X, 120)
    np.testing.assert_array_equal(again, narrow)
    assert not np.allclose(RandomFeatures("relu", X.shape[1], 800, seed=1).transform(X, 120), narrow)


def test_test_error_peaks_at_the_interpolation_threshold_with_label_noise(noisy_curve):
    result = noisy_curve
    for metric in ("test_error", "test_loss", "norm"):
        assert result.peak_width(metric) == 100, metric
    peak = result.row(100)
    last = result.rows[-1]
    classical_best = min(r["test_error_mean"] for r in result.rows if r["width"] < 100)
    assert peak["test_error_mean"] > classical_best + 0.3  # the U's bottom lies well below the peak
    assert peak["test_error_mean"] > last["test_error_mean"] + 0.3
    assert last["norm_mean"] < peak["norm_mean"] / 10
    # past the threshold the test error falls again as N grows
    beyond = [r["test_error_mean"] for r in result.rows if r["width"] >= 100]
    assert beyond[-1] < beyond[1] < beyond[0]


def test_the_curve_is_deterministic(noisy_curve):
    again = double_descent("digits", n=100, n_test=300, label_noise=0.2, seeds=(0, 1))
    assert again.per_seed == noisy_curve.per_seed
    changed = [d["labels_changed"] for d in again.draws]
    assert all(0.1 < c < 0.3 for c in changed)


def test_summary_and_table_name_the_peak(noisy_curve):
    headers, rows = noisy_curve.table()
    assert len(rows) == len(noisy_curve.widths) and len(headers) == len(rows[0])
    peak = noisy_curve.row(100)
    assert f"{peak['test_error_mean']:.1%} at N = 100" in noisy_curve.summary()


def test_save_writes_json_csv_and_figures_that_the_report_reads(noisy_curve, tmp_path):
    paths = save_double_descent(noisy_curve, tmp_path)
    assert paths["json"] == tmp_path / "theory" / "double-descent-digits-relu-n100-noise0.2.json"
    for kind in ("json", "csv", "png", "svg"):
        assert paths[kind].is_file() and paths[kind].stat().st_size > 0, kind
    stored = json.loads(paths["json"].read_text())
    assert stored["result"]["per_seed"] == noisy_curve.per_seed
    with open(paths["csv"]) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["width"]) for r in rows] == noisy_curve.widths
    assert float(rows[0]["test_error_mean"]) == noisy_curve.rows[0]["test_error_mean"]
    (tmp_path / "report").mkdir()
    sections = build_sections(tmp_path, tmp_path / "report")
    ours = [s for s in sections if s.title.startswith("Double descent")]
    assert len(ours) == 1 and ours[0].figures and ours[0].tables[0][1] == noisy_curve.table()[1]


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 200, 7])
def test_unsafe_result_names_are_refused(noisy_curve, tmp_path, name):
    with pytest.raises(RethinkgenError, match="result name"):
        save_double_descent(noisy_curve, tmp_path, name=name)
    assert not any(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("arguments, message", [
    ({"dataset": "nope"}, "unknown dataset 'nope'; allowed:"),
    ({"features": "tanh"}, "unknown random features 'tanh'; allowed: relu, fourier"),
    ({"n": 1}, "training size n 1 must be an integer >= 2"),
    ({"n": 2.5}, "training size n 2.5 must be"),
    ({"n_test": 0}, "test size n_test 0 must be an integer >= 1"),
    ({"widths": []}, r"widths \[\] must be a non-empty list"),
    ({"widths": [10, 0]}, r"widths \[10, 0\] must be"),
    ({"widths": [10**7]}, "must be a non-empty list of integers in 1..200000"),
    ({"widths": "wide"}, "widths 'wide' must be a list"),
    ({"label_noise": 1.5}, r"label noise 1.5 is outside \[0, 1\]"),
    ({"ridge": -1.0}, "ridge -1.0 must be a number >= 0"),
    ({"ridge": float("nan")}, "ridge nan must be"),
    ({"seeds": ()}, r"seeds \[\] must be a non-empty list of integers >= 0"),
    ({"seeds": (0, -1)}, "seeds"),
    ({"features": "fourier", "bandwidth": -2.0}, "bandwidth -2.0 must be > 0"),
    ({"features": "fourier", "bandwidth": "wide"}, "unknown bandwidth 'wide'"),
])
def test_bad_arguments_give_one_line_errors(arguments, message):
    with pytest.raises(RethinkgenError, match=message) as error:
        double_descent(**{"n": 200, "n_test": 20, "widths": [10], "seeds": (0,), **arguments})
    assert "\n" not in str(error.value)


def test_unknown_metric_and_width_are_refused(noisy_curve):
    with pytest.raises(RethinkgenError, match="unknown metric 'accuracy'; allowed: train_error"):
        noisy_curve.peak_width("accuracy")
    with pytest.raises(RethinkgenError, match="width 7 was not measured"):
        noisy_curve.row(7)


def test_the_command_prints_the_table_and_keeps_the_result_for_the_report(tmp_path, capsys):
    from rethinkgen.cli import main
    from rethinkgen.cli.theory import RANDOM_FEATURES
    from rethinkgen.theory.double_descent import FEATURES

    assert RANDOM_FEATURES == FEATURES
    code = main(["theory", "double-descent", "--subset", "40", "--test-subset", "100", "--widths", "10", "40", "160",
                 "--label-noise", "0.2", "--seeds", "0", "--runs", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "| N | N / n |" in out and "test error peaks" in out
    stored = sorted(p.name for p in (tmp_path / "theory").iterdir())
    assert stored == [f"double-descent-digits-relu-n40-noise0.2.{ext}" for ext in ("csv", "json", "png", "svg")]
    rows = json.loads((tmp_path / "theory" / stored[1]).read_text())["result"]["rows"]
    assert [r["width"] for r in rows] == [10, 40, 160] and rows[1]["interpolates"] and not rows[0]["interpolates"]


@pytest.mark.parametrize("args, message", [
    (["--bandwidth", "wide"], "unknown bandwidth 'wide'"),
    (["--random-features", "tanh"], "unknown value 'tanh'; allowed: relu, fourier"),
    (["--subset", "0"], "n"),
])
def test_the_command_refuses_bad_values_in_one_line(tmp_path, capsys, args, message):
    from rethinkgen.cli import main

    assert main(["theory", "double-descent", *args, "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rethinkgen: error: ") and message in err and err.count("\n") == 1
