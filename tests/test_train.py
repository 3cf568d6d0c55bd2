"""The trainer: fitting, determinism, resume, divergence, the run store."""

import json
import shutil

import numpy as np
import pytest
import torch

from helpers import interrupt_after
from rethinkgen.config import RunConfig
from rethinkgen.engine import trainer as train_module
from rethinkgen.engine.trainer import train
from rethinkgen.errors import RethinkgenError
from rethinkgen.store import INDEX_NAME, load

TIMING = {"train_seconds", "wall_seconds", "images_per_second"}


def tiny(**changes) -> RunConfig:
    values = dict(dataset="digits", subset=200, test_subset=100, model="mlp-1x512", epochs=4, log_every=2)
    return RunConfig(**{**values, **changes})


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def test_mlp_fits_random_labels_of_a_small_subset(tmp_path):
    config = tiny(label_noise=1.0, epochs=300, lr_decay=1.0, stop_at_fit=True)
    result = train(config, tmp_path, progress=False)
    s = result.summary
    assert s["status"] == "complete" and s["fitted"]
    assert s["train_accuracy"] == 1.0
    assert s["test_accuracy"] < 0.3  # random labels teach nothing about the test set
    assert s["epochs_to_fit"] == s["epochs_completed"] < 300  # stopped at fit
    assert s["steps_to_fit"] == result.metrics[-1]["step"]
    assert s["fraction_labels_changed"] > 0.8


def test_summary_and_store_files(tmp_path):
    result = train(tiny(label_noise=0.5), tmp_path, progress=False)
    run_dir = result.run_dir
    assert run_dir.name == result.run_id == result.config.run_id()
    for name in ("config.json", "randomization.json", "randomization.npz", "metrics.jsonl", "steps.jsonl",
                 "summary.json", "checkpoint.pt", "initial.pt"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("status", "train_accuracy", "test_accuracy", "steps_to_fit", "epochs_to_fit",
                "best_test_accuracy", "wall_seconds", "device", "generalization_gap", "changed_original_accuracy"):
        assert key in summary
    assert summary["device"] == "cpu" and summary["epochs_completed"] == 4
    assert len(result.metrics) == 4 and [row["epoch"] for row in result.metrics] == [1, 2, 3, 4]
    steps_per_epoch = -(-200 // 128)
    assert result.metrics[-1]["step"] == 4 * steps_per_epoch
    assert [row["step"] for row in result.steps] == [2, 4, 6, 8]
    lrs = [row["lr"] for row in result.metrics]
    np.testing.assert_allclose(lrs, [0.01 * 0.95 ** e for e in range(4)])
    assert 0 <= summary["changed_original_accuracy"] <= 1
    changed = json.loads((run_dir / "randomization.json").read_text())["fraction_changed"]
    for row in result.metrics:  # the accuracy on unchanged and on changed examples, weighted, is the accuracy
        split = (1 - changed) * row["unchanged_accuracy"] + changed * row["changed_accuracy"]
        assert split == pytest.approx(row["train_accuracy"], abs=1e-6)
    assert summary["best_test_accuracy"] == max(row["test_accuracy"] for row in result.metrics)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["lr"] == 0.01 and config["init_seed"] == 0
    frame = load(tmp_path)
    assert list(frame["run_id"]) == [result.run_id]
    assert frame.loc[0, "status"] == "complete" and frame.loc[0, "label_noise"] == 0.5


def test_top5_accuracy_is_recorded_with_more_than_five_classes(tmp_path):
    result = train(tiny(epochs=2), tmp_path, progress=False)
    for row in result.metrics:
        assert row["train_accuracy"] <= row["train_top5_accuracy"] <= 1
        assert row["test_accuracy"] <= row["test_top5_accuracy"] <= 1
    assert result.summary["best_test_top5_accuracy"] == max(row["test_top5_accuracy"] for row in result.metrics)
    four = train(RunConfig(dataset="synthetic", epochs=1), tmp_path, progress=False).summary  # 4 classes
    assert four["test_top5_accuracy"] is None and four["best_test_top5_accuracy"] is None


def test_true_labels_have_no_changed_examples(tmp_path):
    result = train(tiny(), tmp_path, progress=False)
    assert result.summary["changed_original_accuracy"] is None
    assert result.summary["unchanged_accuracy"] is None and result.summary["changed_accuracy"] is None
    assert result.summary["fraction_labels_changed"] == 0.0


def test_same_config_gives_identical_metrics(tmp_path):
    a = train(tiny(label_noise=0.3, augment=("crop", "flip"), dropout=0.2), tmp_path / "a", progress=False)
    b = train(tiny(label_noise=0.3, augment=("crop", "flip"), dropout=0.2), tmp_path / "b", progress=False)
    assert without_timing(a.metrics) == without_timing(b.metrics)
    assert a.steps == b.steps
    c = train(tiny(label_noise=0.3, augment=("crop", "flip"), dropout=0.2, order_seed=1), tmp_path / "c",
              progress=False)
    assert without_timing(a.metrics) != without_timing(c.metrics)


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path):
    config = tiny(label_noise=0.5, epochs=6, augment=("flip",), dropout=0.1)
    reference = train(config, tmp_path / "reference", progress=False)

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", progress=False, on_epoch_end=interrupt_after(3))
    run_dir = tmp_path / "resumed" / config.run_id()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert len(load(tmp_path / "resumed")) == 1

    messages = []
    resumed = train(config, tmp_path / "resumed", progress=False, log=messages.append)
    assert any("resuming after epoch 3" in m for m in messages)
    assert resumed.summary["status"] == "complete"
    assert without_timing(resumed.metrics) == without_timing(reference.metrics)
    assert resumed.steps == reference.steps
    keys = ("train_accuracy", "test_accuracy", "train_loss", "steps_to_fit", "best_test_accuracy")
    assert {k: resumed.summary[k] for k in keys} == {k: reference.summary[k] for k in keys}


def test_checkpoints_that_carry_their_log_rows_still_resume(tmp_path):
    config = tiny(epochs=4)
    reference = train(config, tmp_path / "reference", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "old", progress=False, on_epoch_end=interrupt_after(2))
    path = tmp_path / "old" / config.run_id() / "checkpoint.pt"
    cut = tmp_path / "cut" / config.run_id()
    shutil.copytree(path.parent, cut)
    (cut / "metrics.jsonl").write_text((cut / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    with pytest.raises(RethinkgenError, match=r"metrics.jsonl has 1 rows but its run's checkpoint.pt covers 2"):
        train(config, tmp_path / "cut", progress=False)
    state = torch.load(path, weights_only=True)
    assert (state["epochs"], "history" in state) == (2, False)  # the checkpoint counts the log rows it covers
    del state["epochs"], state["logged_steps"]  # as checkpoints were written before: the rows themselves
    run_dir = path.parent
    state["history"] = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    state["steps"] = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    torch.save(state, path)
    resumed = train(config, tmp_path / "old", progress=False)
    assert without_timing(resumed.metrics) == without_timing(reference.metrics) and resumed.steps == reference.steps


def test_a_finished_run_is_not_trained_again(tmp_path, monkeypatch):
    first = train(tiny(), tmp_path, progress=False)
    monkeypatch.setattr(train_module, "prepare_data", lambda config: pytest.fail("trained again"))
    messages = []
    again = train(tiny(), tmp_path, progress=False, log=messages.append)
    assert again.summary == first.summary and "already complete" in messages[0]


def test_resume_refuses_different_data(tmp_path):
    config = tiny(epochs=2)
    result = train(config, tmp_path, progress=False)
    record_path = result.run_dir / "randomization.json"
    record = json.loads(record_path.read_text())
    record["dataset_hash"] = "0" * 16
    record_path.write_text(json.dumps(record))
    summary = json.loads((result.run_dir / "summary.json").read_text())
    summary["status"] = "interrupted"
    (result.run_dir / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(RethinkgenError, match="refusing to resume on different data"):
        train(config, tmp_path, progress=False)


def test_divergence_stops_the_run_with_a_status_not_a_crash(tmp_path):
    result = train(tiny(lr=1e6, epochs=3, log_every=1), tmp_path, progress=False)
    assert result.summary["status"] == "diverged"
    assert "diverged" in result.summary["message"] and "step" in result.summary["message"]
    assert load(tmp_path).loc[0, "status"] == "diverged"
    # a diverged run is finished: running it again does nothing
    assert train(tiny(lr=1e6, epochs=3, log_every=1), tmp_path, progress=False).summary == result.summary


def test_fit_threshold_sets_time_to_fit(tmp_path):
    loose = train(tiny(epochs=6, fit_threshold=0.5), tmp_path, progress=False).summary
    assert loose["fitted"] and loose["epochs_to_fit"] <= 6
    first = next(r for r in train(tiny(epochs=6, fit_threshold=0.5), tmp_path, progress=False).metrics
                 if r["train_accuracy"] >= 0.5)
    assert loose["steps_to_fit"] == first["step"] and loose["loss_at_fit"] == first["train_loss"]


def test_corrupted_test_labels_and_input_randomizations_train(tmp_path):
    for inputs in ("shuffled-pixels", "random-pixels", "gaussian"):
        result = train(tiny(inputs=inputs, epochs=1, label_noise=0.2, corrupt_test_labels=True), tmp_path,
                       progress=False)
        assert result.summary["status"] == "complete"
        assert json.loads((result.run_dir / "randomization.json").read_text())["inputs"] == inputs


def test_the_index_is_sqlite_in_wal_mode(tmp_path):
    import sqlite3

    train(tiny(epochs=1), tmp_path, progress=False)
    db = sqlite3.connect(tmp_path / INDEX_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_a_running_runs_progress_is_indexed_at_most_every_few_seconds(tmp_path, monkeypatch):
    from rethinkgen import store as results
    from rethinkgen.store import RunStore

    clock = [100.0]
    monkeypatch.setattr(results.time, "monotonic", lambda: clock[0])
    store = RunStore(tmp_path)
    RUN = "0123456789ab"  # a run id: 12 hex digits

    def indexed():
        return {row["run_id"]: (row["status"], row["summary"]["epochs_completed"]) for row in store.rows()}

    store.register(RUN, {}, {"status": "running", "epochs_completed": 1})
    store.register(RUN, {}, {"status": "running", "epochs_completed": 2})  # 0 s later: skipped
    assert indexed() == {RUN: ("running", 1)}
    clock[0] += results.RUNNING_INDEX_INTERVAL_S
    store.register(RUN, {}, {"status": "running", "epochs_completed": 3})
    assert indexed() == {RUN: ("running", 3)}
    store.register(RUN, {}, {"status": "complete", "epochs_completed": 4})  # a final status is always written
    assert indexed() == {RUN: ("complete", 4)}


@pytest.mark.parametrize("model", ["alexnet-small", "inception-small", "inception-small-nobn", "mlp-3x512"])
def test_every_paper_model_trains_with_augmentation(tmp_path, model):
    config = tiny(model=model, subset=64, test_subset=32, epochs=2, batch_size=32,
                  augment=("crop", "flip", "rotate", "jitter"), weight_decay=5e-4, lr=0.01)
    result = train(config, tmp_path, progress=False)
    assert result.summary["status"] == "complete" and result.summary["epochs_completed"] == 2
    assert np.isfinite(result.summary["train_loss"])
    assert result.metrics[0]["train_loss"] != result.metrics[1]["train_loss"]  # the weights moved


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not __import__("os").path.isdir(FASHION), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_true_labels_generalize_and_random_labels_do_not(tmp_path, monkeypatch):
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path / "empty-cache"))
    base = dict(dataset="fashion-mnist", subset=1000, test_subset=1000, epochs=5, lr_decay=1.0)
    true = train(RunConfig(**base), tmp_path, progress=False).summary
    random = train(RunConfig(**base, label_noise=1.0), tmp_path, progress=False).summary
    assert true["test_accuracy"] > 0.6
    assert random["test_accuracy"] < 0.2


def test_a_run_that_another_process_is_training_is_refused(tmp_path):
    from rethinkgen.engine.trainer import RunBusy, run_lock

    config = tiny(epochs=1)
    run_dir = tmp_path / config.run_id()
    run_dir.mkdir(parents=True)
    with run_lock(run_dir, config.run_id()):
        with pytest.raises(RunBusy, match="being trained by another process"):
            train(config, tmp_path, progress=False)
    assert train(config, tmp_path, progress=False).summary["status"] == "complete"  # the lock is released
