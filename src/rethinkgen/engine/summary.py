"""A run's summary: what ``summary.json`` and the runs folder's index say about it."""

from __future__ import annotations

from pathlib import Path

from rethinkgen import models
from rethinkgen.config import RunConfig
from rethinkgen.data.label_noise import chance_accuracy
from rethinkgen.data.randomize import RandomizationRecord
from rethinkgen.engine.provenance import provenance
from rethinkgen.engine.speedups import Speedups
from rethinkgen.store import RunStore, write_json


def summary_base(run_id: str, device, model, data, record: RandomizationRecord, speedups: Speedups,
                 world_size: int = 1) -> dict:
    """The summary keys fixed for the whole run, its provenance included (``engine.provenance``).

    Args:
        run_id: the run's id.
        device: the training device.
        model: the run's network (its parameters are counted).
        data: its training data (``DeviceData`` or ``StreamedData``).
        record: its randomization record.
        speedups: its GPU switches.
        world_size: how many processes train it (torchrun), 1 otherwise.
    """
    facts = record.summary(data.num_train)
    test_changed = facts["fraction_test_changed"] if record.corrupt_test_labels else None
    return {"run_id": run_id, "device": str(device), "parameters": models.count_parameters(model),
            "num_classes": data.num_classes, "fraction_labels_changed": len(record.changed) / data.num_train,
            "label_noise_mode": record.label_noise_mode, "fraction_test_labels_changed": test_changed,
            "chance_test_accuracy": chance_accuracy(data.num_classes, test_changed), "message": "", **speedups.describe(), "world_size": world_size, **provenance(device)}


def summarize(history: list[dict], fit_threshold: float) -> dict:
    """Final metrics, time to fit and best test accuracy, from the per-epoch history.

    Args:
        history: the run's metrics rows, one per epoch.
        fit_threshold: the training accuracy at which the run counts as having fit its labels.
    """
    summary = {key: None for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy",
                                     "changed_original_accuracy", "unchanged_accuracy", "changed_accuracy", "online_accuracy",
                                     "generalization_gap", "steps_to_fit",
                                     "epochs_to_fit", "loss_at_fit", "best_test_accuracy", "best_test_epoch",
                                     "train_top5_accuracy", "test_top5_accuracy", "best_test_top5_accuracy")}
    summary.update(epochs_completed=len(history), steps=history[-1]["step"] if history else 0,
                   wall_seconds=history[-1]["wall_seconds"] if history else 0.0, fitted=False)
    if not history:
        return summary
    last = history[-1]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "changed_original_accuracy",
                "unchanged_accuracy", "changed_accuracy", "online_accuracy", "train_top5_accuracy",
                "test_top5_accuracy"):
        summary[key] = last.get(key)  # older runs lack top-5 and the split by changed labels
    summary["generalization_gap"] = last["train_accuracy"] - last["test_accuracy"]
    fit = next((row for row in history if row["train_accuracy"] >= fit_threshold), None)
    if fit is not None:
        summary.update(fitted=True, steps_to_fit=fit["step"], epochs_to_fit=fit["epoch"], loss_at_fit=fit["train_loss"])
    best = max(history, key=lambda row: row["test_accuracy"])
    summary.update(best_test_accuracy=best["test_accuracy"], best_test_epoch=best["epoch"])
    top5 = [row["test_top5_accuracy"] for row in history if row.get("test_top5_accuracy") is not None]
    summary["best_test_top5_accuracy"] = max(top5) if top5 else None
    seconds = sum(row["train_seconds"] for row in history)
    summary["images_per_second"] = sum(row["images"] for row in history) / seconds if seconds else None
    return summary


def write_summary(store: RunStore | None, config: RunConfig, run_dir: Path, base: dict, history: list[dict],
                  status: str, message: str = "", write: bool = True, extra: dict | None = None) -> dict:
    """The run's summary; with ``write``, also saved as ``summary.json`` and registered in the index.

    Args:
        store: the runs folder whose index lists the run (unused without ``write``).
        config: the run's settings.
        run_dir: its folder.
        base: the keys fixed for the whole run (``summary_base``).
        history: its metrics rows so far.
        status: ``running``, ``complete``, ``diverged``, ``interrupted`` or ``failed``.
        message: what to tell the user about the status.
        write: save it (False on the processes of a distributed run other than rank 0).
        extra: more keys (the ``measure_<name>`` values of a completed run).
    """
    summary = {**base, **summarize(history, config.fit_threshold), **(extra or {}), "status": status,
               "message": message}
    if write:
        write_json(run_dir / "summary.json", summary)
        store.register(base["run_id"], config.to_dict(), summary)
    return summary
