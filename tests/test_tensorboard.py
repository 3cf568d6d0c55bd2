"""TensorBoard event files: what a run writes, read back with tensorboard's own reader; off by default."""

import importlib.util
import json

import pytest

from rethinkgen.cli import main
from rethinkgen.config import RunConfig
from rethinkgen.engine import tensorboard
from rethinkgen.engine.trainer import train


def read_events(run_dir):
    """The scalars ({tag: [(step, value)]}) and texts of a run's event files, by tensorboard's reader."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    reader = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    reader.Reload()
    scalars = {tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}
    texts = {tag: [e.tensor_proto.string_val[0].decode() for e in reader.Tensors(tag)]
             for tag in reader.Tags()["tensors"]}
    return scalars, texts


def test_a_run_writes_steps_epochs_and_its_fit(tmp_path):
    pytest.importorskip("tensorboard")
    config = RunConfig(dataset="synthetic", epochs=6, log_every=2, measures="none", stop_at_fit=True,
                       fit_threshold=0.9, tensorboard=True)
    result = train(config, tmp_path, progress=False)
    assert result.run_id == RunConfig(**{**config.to_dict(), "tensorboard": False}).run_id()  # not in the run id
    history = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [json.loads(line) for line in (result.run_dir / "steps.jsonl").read_text().splitlines()]
    scalars, texts = read_events(result.run_dir)
    assert [step for step, _ in scalars["train/loss_running"]] == [row["step"] for row in steps]
    assert scalars["test/accuracy"] == [(row["step"], pytest.approx(row["test_accuracy"])) for row in history]
    for tag, key in (("train/accuracy", "train_accuracy"), ("lr", "lr"), ("images_per_second", "images_per_second")):
        assert [value for _, value in scalars[tag]] == pytest.approx([row[key] for row in history], rel=1e-6)
    fit_epoch = next(row for row in history if row["train_accuracy"] >= 0.9)
    assert scalars["fit/epoch"] == [(fit_epoch["step"], fit_epoch["epoch"])]
    assert texts["fit/text_summary"][0].startswith(f"fitted its training labels at epoch {fit_epoch['epoch']}")


def test_off_by_default_and_a_missing_extra_is_said_in_one_line(tmp_path, monkeypatch, capsys):
    result = train(RunConfig(dataset="synthetic", epochs=1, measures="none"), tmp_path, progress=False)
    assert not list(result.run_dir.glob("events.out.tfevents.*"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert main(["run", "--dataset", "synthetic", "--epochs", "1", "--seed", "3", "--tensorboard", "--quiet",
                 "--runs", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "rethinkgen: error: " + tensorboard.MISSING
