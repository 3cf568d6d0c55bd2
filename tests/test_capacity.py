"""Rademacher complexity by fitting random signs, the one-example stability probe, and their figures."""

import numpy as np
import pytest

from rethinkgen import data
from rethinkgen.errors import RethinkgenError
from rethinkgen.theory import capacity
from rethinkgen.theory.capacity import (
    FITTERS,
    RademacherResult,
    StabilityResult,
    make_fitter,
    network_fitter,
    plot_rademacher,
    plot_stability,
    rademacher,
    rademacher_suite,
    sample_inputs,
    stability_probe,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks run fastest on one thread


@pytest.fixture(scope="module")
def synthetic():
    return data.load("synthetic", n_train=64, n_test=32, num_classes=4)


# --- Rademacher complexity ---------------------------------------------------------------------------


def test_linear_interpolates_any_signs_when_n_is_at_most_d():
    rng = np.random.default_rng(0)
    for n, d in [(50, 80), (80, 80)]:
        result = rademacher(rng.standard_normal((n, d)), "linear", draws=10, seed=3)
        assert result.values == [1.0] * 10
        assert result.mean == 1.0 and result.std == 0.0 and result.n == n and result.draws == 10


def test_linear_takes_image_shaped_input():
    X = np.random.default_rng(1).standard_normal((30, 1, 8, 8))
    assert rademacher(X, FITTERS["linear"](), draws=3).values == [1.0] * 3


def test_constant_class_has_complexity_near_zero():
    n = 400
    X = np.random.default_rng(2).standard_normal((n, 3))
    result = rademacher(X, "constant", draws=300, seed=0)
    assert abs(result.mean) < 3 / np.sqrt(n)
    # the best constant always agrees with the majority sign: every value is |mean sigma| >= 0
    assert min(result.values) >= 0
    assert len(result.values) == 300


def test_mlp_fits_random_signs_on_digits_images(digits):
    X = sample_inputs(digits, 100, seed=0)
    assert X.shape == (100, 1, 8, 8) and X.dtype == np.float64
    result = rademacher(X, network_fitter("mlp-1x512", epochs=300, seed=0), draws=3, seed=0)
    assert result.mean > 0.9
    flat = rademacher(X.reshape(100, -1), make_fitter("network", epochs=300), draws=1, seed=0)
    assert flat.mean > 0.9


def test_sign_of_zero_counts_as_plus_one_and_draws_are_seeded():
    X = np.zeros((200, 2))
    seen = []

    def fit(X, sigma):
        seen.append(sigma.copy())
        return lambda X_new: np.zeros(len(X_new))

    result = rademacher(X, fit, draws=4, seed=7)
    np.testing.assert_allclose(result.values, [s.mean() for s in seen])
    assert all(set(np.unique(s)) <= {-1.0, 1.0} for s in seen)
    again = rademacher(X, fit, draws=4, seed=7)
    assert again.values == result.values
    assert rademacher(X, fit, draws=4, seed=8).values != result.values


def test_rademacher_suite_uses_the_same_sample_for_every_class(digits):
    results = rademacher_suite(digits, ["linear", "constant", "mlp-1x512"], n=40, draws=2, epochs=50, seed=0)
    assert list(results) == ["linear", "constant", "mlp-1x512"]
    assert all(isinstance(r, RademacherResult) and r.n == 40 and r.draws == 2 for r in results.values())
    assert results["linear"].values == [1.0, 1.0]
    assert results["mlp-1x512"].config["epochs"] == 50
    assert results["constant"].to_dict()["name"] == "constant"


@pytest.mark.parametrize("call", [
    lambda: make_fitter("quadratic"),
    lambda: rademacher(np.ones((5, 2)), "quadratic"),
    lambda: make_fitter("nomodule:factory"),
    lambda: rademacher(np.ones((5, 2)), "linear", draws=0),
    lambda: rademacher(np.ones((5, 2)), "linear", draws=1.5),
    lambda: rademacher(np.ones((5, 2)), "linear", seed=-1),
    lambda: rademacher(np.ones(5), "linear"),
    lambda: rademacher(np.full((5, 2), np.nan), "linear"),
    lambda: rademacher(np.ones((5, 2)), 42),
    lambda: rademacher(np.ones((5, 2)), lambda X, s: (lambda Z: np.ones(3))),
    lambda: rademacher(np.ones((5, 2)), lambda X, s: (lambda Z: np.full(len(Z), np.nan))),
    lambda: network_fitter(epochs=0),
    lambda: network_fitter(lr=-0.1),
    lambda: network_fitter(batch_size=0),
])
def test_bad_rademacher_input_raises(call):
    with pytest.raises(RethinkgenError):
        call()


def test_unknown_fitter_message_lists_the_choices():
    with pytest.raises(RethinkgenError, match="quadratic.*constant.*linear.*network.*mlp-1x512"):
        make_fitter("quadratic")


# --- uniform stability -------------------------------------------------------------------------------


def test_no_op_twin_never_drifts(digits):
    result = stability_probe(digits, "mlp-1x512", n=100, epochs=3, replacement=None, n_test=100)
    assert isinstance(result, StabilityResult)
    assert [row["epoch"] for row in result.rows] == [1, 2, 3]
    for row in result.rows:
        assert row["loss_difference"] == row["max_loss_difference"] == 0.0
        assert row["disagreement"] == 0.0 and row["parameter_distance"] == 0.0
        assert row["train_accuracy_a"] == row["train_accuracy_b"]
    assert result.config["no_op"] and result.config["replacement_example"] == result.config["original_example"]


def test_replacing_one_example_moves_the_weights(digits):
    result = stability_probe(digits, "mlp-1x512", n=100, epochs=2, replaced_index=5, seed=1, n_test=100)
    assert len(result.rows) == 2
    assert all(row["parameter_distance"] > 0 for row in result.rows)
    assert result.rows[0]["loss_difference"] > 0
    for key in ("disagreement", "train_accuracy_a", "train_accuracy_b", "test_accuracy_a", "test_accuracy_b"):
        assert all(0.0 <= row[key] <= 1.0 for row in result.rows)
    config = result.config
    assert not config["no_op"] and config["replaced_index"] == 5 and config["lr"] == 0.01
    # the replacement comes from outside the subset
    subset = digits.subset(100, seed=1)
    replacement = digits.x_train[config["replacement_example"]]
    assert not any(np.array_equal(replacement, x) and y == config["replacement_label"]
                   for x, y in zip(subset.x_train, subset.y_train))
    assert np.array_equal(subset.x_train[5], digits.x_train[config["original_example"]])
    again = stability_probe(digits, "mlp-1x512", n=100, epochs=2, replaced_index=5, seed=1, n_test=100)
    assert again.rows == result.rows


def test_explicit_replacement_index(synthetic):
    result = stability_probe(synthetic, n=16, epochs=1, replacement=3, n_test=8)
    assert result.config["replacement_example"] == 3 and len(result.rows) == 1


@pytest.mark.parametrize("options", [
    {"n": 65},                       # larger than the 64 training examples
    {"n": 64},                       # no example left outside the subset to swap in
    {"n": 0},
    {"n": 16, "replaced_index": 16},
    {"n": 16, "replaced_index": -1},
    {"n": 16, "epochs": 0},
    {"n": 16, "lr": 0.0},
    {"n": 16, "batch_size": 0},
    {"n": 16, "replacement": "nearest"},
    {"n": 16, "replacement": 64},
    {"n": 16, "n_test": 33},
    {"n": 16, "model": "resnet"},
])
def test_bad_stability_input_raises(synthetic, options):
    with pytest.raises(RethinkgenError):
        stability_probe(synthetic, **{"epochs": 1, **options})


def test_stability_rejects_a_non_dataset():
    with pytest.raises(RethinkgenError):
        stability_probe(np.zeros((4, 1, 8, 8)), n=2, epochs=1)


# --- figures -----------------------------------------------------------------------------------------


def test_figures_are_written_as_png_and_svg(tmp_path, synthetic):
    results = {"linear": RademacherResult([1.0, 1.0], 1.0, 0.0, 40, 2, "linear"),
               "constant": RademacherResult([0.05, 0.0], 0.025, 0.035, 40, 2, "constant")}
    stability = stability_probe(synthetic, n=16, epochs=2, n_test=8)
    for path in (plot_rademacher(results, tmp_path / "rademacher.png"),
                 plot_stability(stability, tmp_path / "sub" / "stability.png")):
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert path.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(RethinkgenError):
        plot_rademacher({}, tmp_path / "empty.png")
    with pytest.raises(RethinkgenError):
        plot_stability(StabilityResult([], {}), tmp_path / "empty.png")


def test_module_registry():
    assert set(FITTERS) == {"constant", "linear", "network"}
    assert capacity.DEFAULT_NETWORK_EPOCHS >= 1
