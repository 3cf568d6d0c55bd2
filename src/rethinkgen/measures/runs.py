"""Measures of stored runs: computed from a run's checkpoint on exactly the data it trained on, kept in
``measures.json`` in its folder and copied into its summary (as ``measure_<name>``) and the index, so
``rethinkgen.store.load`` shows them as columns."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from rethinkgen import measures, models
from rethinkgen.config import RunConfig
from rethinkgen.data import arrays as data_arrays
from rethinkgen.data.randomize import RandomizationRecord
from rethinkgen.engine.checkpoints import load_state
from rethinkgen.engine.data import DeviceData, prepare_data, resolve_device
from rethinkgen.engine.summary import summarize
from rethinkgen.errors import DamagedFile, RethinkgenError, warn
from rethinkgen.measures.flatness import DEFAULTS
from rethinkgen.store import (
    INDEX_NAME,
    RunStore,
    index_rows,
    read_json,
    run_lock,
    run_path,
    write_json,
)

MEASURES_FILE = "measures.json"
SUMMARY_PREFIX = "measure_"


def read_measures(run_dir: Path) -> dict:
    """The run's stored measures; a damaged measures.json is named in a warning and read as empty (its
    measures are computed again and the file rewritten)."""
    path = Path(run_dir) / MEASURES_FILE
    try:
        stored = read_json(path) if path.exists() else {}
    except DamagedFile as damaged:
        warn(f"{damaged}; its measures count as not computed")
        stored = {}
    stored = {"values": {}, "unavailable": {}, "settings": {}, "seconds": 0.0, **stored}
    for key in ("values", "unavailable", "settings"):
        if not isinstance(stored[key], dict):
            warn(f"{path}: '{key}' is not a mapping; read as empty")
            stored[key] = {}
    return stored


def save_measures(run_dir: Path, values: dict, unavailable: dict, settings: dict, seconds: float) -> dict:
    """Merge new results into ``measures.json`` (a value replaces an earlier reason and the reverse)."""
    stored = read_measures(run_dir)
    for name in values:
        stored["unavailable"].pop(name, None)
    for name in unavailable:
        stored["values"].pop(name, None)
    stored["values"].update(values)
    stored["unavailable"].update(unavailable)
    stored["settings"].update(settings)
    stored["seconds"] += seconds
    write_json(Path(run_dir) / MEASURES_FILE, stored)
    return stored


def summary_fields(stored: dict) -> dict:
    """The summary keys of stored measures: ``measure_<name>`` for each value.

    Args:
        stored: the run's measures.json, as ``save_measures`` returns it.
    """
    return {SUMMARY_PREFIX + name: value for name, value in stored["values"].items()}


def measure_model(context: measures.MeasureContext, run_dir: Path, names: list[str]) -> dict:
    """Compute ``names`` for one run, store them, and return the stored measures."""
    started = time.perf_counter()
    values, unavailable = measures.compute(context, names)
    used = {k: context.setting(k, v) for k, v in DEFAULTS.items()} if any(
        measures.get_measure(n).kind == "flatness" for n in names) else {}
    return save_measures(run_dir, values, unavailable, used, time.perf_counter() - started)


def initial_state(run_dir: Path) -> dict | None:
    """The model weights a run started from (``initial.pt``), or None if the file is missing.

    Args:
        run_dir: the run's folder.
    """
    path = Path(run_dir) / "initial.pt"
    return load_state(path).get("model") if path.exists() else None


def measure_trained(model, device_data, run_dir: Path, summary: dict, config: RunConfig,
                    train_logits: torch.Tensor | None = None) -> dict:
    """The trainer's hook: the ``config.measures`` set for a model that just finished; summary fields back.
    ``train_logits``: the model's logits on the training set, when the trainer has them at hand."""
    context = measures.MeasureContext(model, device_data.x_train, device_data.y_train, summary,
                                      initial_state(run_dir), config.eval_batch_size, train_logits=train_logits)
    return summary_fields(measure_model(context, run_dir, measures.resolve(which=config.measures)))


def measure_completed(model: torch.nn.Module, data: object, run_dir: Path, history: list[dict],
                      config: RunConfig) -> dict:
    """The complexity measures of a completed run (``config.measures``), as measure_<name> summary keys: the
    trainers' ``measure`` hook (``engine.run.RunState``).

    They need the training set in memory: runs streamed from an image folder get none.

    Args:
        model: the trained network.
        data: its training data (``DeviceData``; anything else gets no measures).
        run_dir: its folder (the measures read ``initial.pt`` and write ``measures.json``).
        history: its metrics rows.
        config: its settings.
    """
    if not isinstance(data, DeviceData):
        return {}
    return measure_trained(model, data, run_dir, summarize(history, config.fit_threshold), config,
                           data.last_train_logits)


def load_context(run_dir: Path, device: str = "auto", dataset=None) -> measures.MeasureContext:
    """Rebuild a finished run's trained model and training data from its folder (``dataset``: the arrays a
    run on ``arrays:NAME`` trained on; refused if they are not the same data)."""
    run_dir = Path(run_dir)
    checkpoint_path = run_dir / "checkpoint.pt"
    if not checkpoint_path.exists():
        raise RethinkgenError(f"run {run_dir.name} has no checkpoint.pt in {run_dir}; the measures need its "
                              f"trained weights (train it again: remove the folder and rerun)")
    config = RunConfig.from_mapping({**read_json(run_dir / "config.json"), "device": device},
                                    where=f"{run_dir / 'config.json'}: ")
    device = resolve_device(config.device)
    if dataset is not None and data_arrays.arrays_sha256(dataset) != config.data_hash:
        raise RethinkgenError(f"run {run_dir.name} did not train on these arrays (their SHA-256 differs from its "
                              f"data_hash); refusing to measure it on different data")
    clean, randomized, record = prepare_data(config, dataset)
    if (run_dir / "randomization.json").exists():
        saved = RandomizationRecord.load(run_dir)
        if saved.dataset_hash != record.dataset_hash:
            raise RethinkgenError(f"run {run_dir.name}: its data now hash to {record.dataset_hash}, but it trained on "
                                  f"{saved.dataset_hash}; refusing to measure it on different data")
    device_data = DeviceData(clean, randomized, record, config, device)
    model = models.create_run_model(config.model, device_data.input_shape, device_data.num_classes,
                                    config.dropout).to(device)
    state = load_state(checkpoint_path)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise DamagedFile(f"{checkpoint_path} does not hold this run's model "
                          f"({(str(error).strip().splitlines() or [''])[0][:120]})") from None
    summary = read_json(run_dir / "summary.json")
    return measures.MeasureContext(model, device_data.x_train, device_data.y_train, summary, initial_state(run_dir),
                                   config.eval_batch_size)


def missing(run_dir: Path, names: list[str]) -> list[str]:
    """The measures of ``names`` that a run has neither a value nor a reason for."""
    stored = read_measures(run_dir)
    return [n for n in names if n not in stored["values"] and n not in stored["unavailable"]]


def finished_runs(runs_dir: Path) -> list[dict]:
    """The index rows of the runs that completed (diverged, failed and unfinished runs have no measures)."""
    runs_dir = Path(runs_dir)
    if not (runs_dir / INDEX_NAME).exists():
        raise RethinkgenError(f"{runs_dir} is not a runs folder (no {INDEX_NAME})")
    return [row for row in index_rows(runs_dir) if row["status"] == "complete"]


def measure_stored_run(runs_dir: Path, run_id: str, names: list[str], device: str = "auto",
                       recompute: bool = False, dataset=None) -> list[str]:
    """Compute the measures a finished run lacks (all of ``names`` with ``recompute``); return their names.
    ``dataset``: the arrays a run on ``arrays:NAME`` trained on (see ``load_context``)."""
    store = RunStore(runs_dir)
    run_dir = store.run_dir(run_id)
    todo = list(names) if recompute else missing(run_dir, names)
    if not todo:
        return []
    with run_lock(run_dir, run_id):
        stored = measure_model(load_context(run_dir, device, dataset), run_dir, todo)
        summary_path = run_dir / "summary.json"
        summary = {k: v for k, v in read_json(summary_path).items() if not k.startswith(SUMMARY_PREFIX)}
        summary.update(summary_fields(stored))
        write_json(summary_path, summary)
        store.register(run_id, read_json(run_dir / "config.json"), summary)
    return todo


def load_records(runs_dir: Path) -> list[dict]:
    """For every completed run: its settings, gap, label noise and stored measure values."""
    records = []
    for row in finished_runs(runs_dir):
        stored = read_measures(run_path(runs_dir, row["run_id"]))
        records.append({"run_id": row["run_id"], "config": row["config"],
                        "gap": row["summary"].get("generalization_gap"),
                        "label_noise": row["config"].get("label_noise"), "measures": stored["values"]})
    return records
