"""Label noise modes (uniform, the paper's; other, always a different class), their realized fractions,
the chance baselines of the test labels, and the words for a run that did not fit."""

import json
from pathlib import Path

import numpy as np
import pytest

from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.data.builtin import load_synthetic
from rethinkgen.data.label_noise import chance_accuracy, corrupt_labels, expected_fraction_changed
from rethinkgen.data.randomize import RandomizationRecord, randomize
from rethinkgen.engine.trainer import train
from rethinkgen.errors import RethinkgenError
from rethinkgen.experiments.demo import results_table
from rethinkgen.experiments.sweep import Sweep, SweepOutcome, SweepRun, run_sweep
from rethinkgen.outcome import fit_words, status_words
from rethinkgen.report import Run, status_of

K = 10
N = 20000


@pytest.fixture(scope="module")
def big():
    """20,000 labels over 10 classes: enough for 5-sigma binomial checks."""
    return load_synthetic(n_train=N, n_test=2000, channels=1, size=4, num_classes=K, seed=1)


def within_sigmas(count, n, p, sigmas=5):
    return abs(count - n * p) <= sigmas * np.sqrt(n * p * (1 - p)) + 1


def test_random_labels_other_changes_every_label_uniform_keeps_about_one_in_k(big):
    _, uniform = randomize(big, label_noise=1.0, seed=2, label_noise_mode="uniform")
    other_data, other = randomize(big, label_noise=1.0, seed=2, label_noise_mode="other")
    assert len(other.changed) == N and (other_data.y_train != big.y_train).all()
    assert within_sigmas(N - len(uniform.changed), N, 1 / K)  # about 1/K stay right
    assert len(uniform.replaced) == len(other.replaced) == N


def test_other_draws_the_new_label_uniformly_over_the_other_classes(big):
    noisy, record = randomize(big, label_noise=1.0, seed=4, label_noise_mode="other")
    shifts = (noisy.y_train - big.y_train) % K
    counts = np.bincount(shifts, minlength=K)
    assert counts[0] == 0 and all(within_sigmas(c, N, 1 / (K - 1)) for c in counts[1:])


@pytest.mark.parametrize("mode", ["uniform", "other"])
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_realized_fraction_matches_the_expected_one_and_is_recorded(big, tmp_path, mode, p):
    _, record = randomize(big, label_noise=p, seed=5, corrupt_test_labels=True, label_noise_mode=mode)
    facts = record.summary(N)
    expected = p * (1 - 1 / K) if mode == "uniform" else p
    assert facts["expected_fraction_changed"] == pytest.approx(expected)
    assert within_sigmas(facts["n_changed"], N, expected) and facts["fraction_changed"] == facts["n_changed"] / N
    assert facts["label_noise_mode"] == mode and facts["n_test"] == 2000
    assert facts["fraction_test_changed"] == len(record.test_changed) / 2000
    assert within_sigmas(len(record.test_changed), 2000, expected)
    record.save(tmp_path, N)
    loaded = RandomizationRecord.load(tmp_path)
    assert loaded.label_noise_mode == mode and loaded.n_test == 2000
    assert json.loads((tmp_path / "randomization.json").read_text())["fraction_changed"] == facts["fraction_changed"]


def test_uniform_is_the_default_and_draws_what_it_always_drew(big):
    default, _ = randomize(big, label_noise=0.5, seed=3)
    uniform, _ = randomize(big, label_noise=0.5, seed=3, label_noise_mode="uniform")
    assert np.array_equal(default.y_train, uniform.y_train)
    rng = np.random.default_rng([3, 1])  # the training labels' stream, drawn as before the modes existed
    mask, draws = rng.random(N) < 0.5, rng.integers(0, K, size=N)
    assert np.array_equal(default.y_train, np.where(mask, draws, big.y_train))


def test_an_old_record_without_the_mode_reads_as_uniform(big, tmp_path):
    _, record = randomize(big, label_noise=0.5, seed=3)
    record.save(tmp_path, N)
    facts = json.loads((tmp_path / "randomization.json").read_text())
    for key in ("label_noise_mode", "n_test", "fraction_test_changed"):
        del facts[key]
    (tmp_path / "randomization.json").write_text(json.dumps(facts))
    assert RandomizationRecord.load(tmp_path).label_noise_mode == "uniform"


def test_an_unknown_mode_is_refused_naming_the_allowed_ones(big):
    with pytest.raises(RethinkgenError, match="unknown label noise mode 'flip'; allowed: uniform, other"):
        randomize(big, label_noise=0.5, label_noise_mode="flip")
    with pytest.raises(RethinkgenError, match="unknown label_noise_mode 'flip'; allowed: uniform, other"):
        RunConfig(label_noise_mode="flip").validated()


def test_chance_baselines():
    assert chance_accuracy(K) == pytest.approx(1 / K)
    assert chance_accuracy(K, 0.0) == 1.0 and chance_accuracy(K, 0.9) == pytest.approx(0.01 + 0.81 / 9)
    # the formula is the agreement of two labelings each corrupted, to another class, at rate p'
    rng = np.random.default_rng(0)
    truth = rng.integers(0, K, 200000)
    a, _, changed_a = corrupt_labels(truth, 0.6, K, rng, "other")
    b, _, changed_b = corrupt_labels(truth, 0.6, K, rng, "other")
    realized = (len(changed_a) + len(changed_b)) / (2 * len(truth))
    assert np.mean(a == b) == pytest.approx(chance_accuracy(K, realized), abs=0.005)
    assert expected_fraction_changed(0.6, K, "other") == 0.6


def test_a_run_records_and_prints_its_noise_and_chance(tmp_path, capsys):
    code = main(["run", "--label-noise", "0.5", "--label-noise-mode", "other", "--corrupt-test-labels", "--subset",
                 "200", "--test-subset", "100", "--epochs", "1", "--runs", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    summary = json.loads(next(tmp_path.glob("*/summary.json")).read_text())
    record = json.loads(next(tmp_path.glob("*/randomization.json")).read_text())
    assert code == 0 and summary["label_noise_mode"] == "other" and record["label_noise_mode"] == "other"
    assert summary["fraction_labels_changed"] == record["fraction_changed"] > 0.3
    assert summary["fraction_test_labels_changed"] == record["fraction_test_changed"] > 0.3
    p = summary["fraction_test_labels_changed"]
    assert summary["chance_test_accuracy"] == pytest.approx((1 - p) ** 2 + p ** 2 / 9)
    assert (f"labels changed {summary['fraction_labels_changed']:.1%} (p=0.5, other), test labels changed {p:.1%}; "
            f"chance test accuracy {summary['chance_test_accuracy']:.4f}") in out


# ----------------------------------------------------------------------------------------- did not fit
def test_a_run_that_ran_out_of_epochs_says_it_did_not_fit(tmp_path, capsys):
    code = main(["run", "--label-noise", "1", "--subset", "200", "--test-subset", "60", "--epochs", "1",
                 "--runs", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    summary = json.loads(next(tmp_path.glob("*/summary.json")).read_text())
    assert code == 0 and summary["fitted"] is False
    assert f"[complete] in {next(tmp_path.glob('*/summary.json')).parent}: did not fit its training labels\n" in out
    assert (f"did not fit: train accuracy {summary['train_accuracy']:.4f} < fit threshold 1 after 1 epoch  "
            "best test") in out


def stored_run(label, status, fitted, steps_to_fit=None):
    summary = {"status": status, "fitted": fitted, "steps_to_fit": steps_to_fit, "train_accuracy": 0.5 + 0.5 * fitted,
               "test_accuracy": 0.3, "generalization_gap": 0.2 + 0.5 * fitted, "fraction_labels_changed": 0.9,
               "epochs_completed": 4, "epochs_to_fit": 2 if fitted else None, "num_classes": K,
               "chance_test_accuracy": 0.1}
    return Run("0" * 12, label, {}, {"label_noise": 1.0, "inputs": "original"}, status, summary, Path("."))


def test_tables_and_reports_say_did_not_fit():
    fitted, unfitted = stored_run("true labels", "complete", True, 40), stored_run("random labels", "complete", False)
    table = results_table([fitted, unfitted])
    row = next(line for line in table.splitlines() if line.startswith("| random labels"))
    assert row.endswith("| did not fit | - | complete, did not fit |")
    assert next(line for line in table.splitlines() if line.startswith("| true labels")).endswith("| complete |")
    assert "Chance accuracy on the test labels: 0.1000 (1/K with K = 10 classes" in table
    assert status_of([fitted, unfitted, stored_run("x", "failed", False)]) == "2 complete (1 did not fit), 1 failed"
    assert status_words("complete", unfitted.summary) == "complete, did not fit"
    assert status_words("diverged", unfitted.summary) == "diverged"
    assert fit_words(fitted.summary, 1.0) == "fitted at step 40 (epoch 2)"


def test_the_sweep_summary_names_runs_that_did_not_fit(tmp_path):
    config = RunConfig(label_noise=1.0, subset=150, test_subset=60, epochs=1)
    sweep = Sweep("unfit", [SweepRun("random labels", config)])
    outcome = run_sweep(sweep, tmp_path, progress=False)
    lines = outcome.lines()
    assert isinstance(outcome, SweepOutcome) and len(outcome.not_fitted) == 1
    assert lines[0].endswith("; 1 complete run(s) did not fit their training labels within their epochs")
    assert lines[1].startswith("  complete, did not fit: train accuracy ") and \
        lines[1].endswith(f"< fit threshold 1 after 1 epoch: random labels [{config.run_id()}]")
    assert train(config, tmp_path, progress=False).summary["fitted"] is False
