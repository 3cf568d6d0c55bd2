"""Training one run: its folder, lock, data, initial model and checkpoints, and the public ``train``.

The epoch loop itself is the engine's (``rethinkgen.engine``): ``engine.loop.train_epochs`` drives a
``SingleStepper`` over one ``RunState``, the same loop that trains an ensemble's copies
(``rethinkgen.engine.ensemble``). Every random draw of an epoch is derived from the seeds and the epoch number,
so a run resumed from its last checkpoint ends with exactly the metrics of a run that was never
interrupted. Data-parallel training of one run by several processes (torchrun) is in distributed.py.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from rethinkgen import data, models
from rethinkgen.config import RunConfig
from rethinkgen.data.randomize import RandomizationRecord
from rethinkgen.engine import distributed
from rethinkgen.engine.checkpoints import load_state, save_state
from rethinkgen.engine.data import DeviceData, prepare_data, resolve_device, training_data  # noqa: F401
from rethinkgen.engine.loop import EpochHook, train_epochs
from rethinkgen.engine.run import RunState
from rethinkgen.engine.single import SingleStepper
from rethinkgen.engine.speedups import device_type
from rethinkgen.engine.summary import summary_base, write_summary
from rethinkgen.errors import DamagedFile, RethinkgenError
from rethinkgen.measures.runs import measure_completed
from rethinkgen.store import (  # noqa: F401
    LOCK_NAME,
    RunBusy,
    RunStore,
    StoredRun,
    append_jsonl,
    finished_summary,
    read_summary,
    run_lock,
    write_json,
    write_jsonl,
)


@dataclass
class RunResult(StoredRun):
    """A trained (or skipped, or failed) run as ``train`` returns it; its logs are read from ``run_dir``.

    Args:
        run_id: the run's id.
        run_dir: its folder.
        config: its settings.
        summary: its summary (``status``, final metrics, time to fit, provenance).
    """

    run_id: str
    run_dir: Path
    config: RunConfig
    summary: dict


RESTART_HINT = "; to discard this run's files and train it from the start, run again with --restart"


def train(config: RunConfig, runs_dir: str | Path = "runs", progress: bool = True,
          log: Callable[[str], None] | None = None, index: bool = True,
          on_epoch_end: EpochHook | None = None, restart: bool = False,
          dataset: data.Dataset | None = None) -> RunResult:
    """Train one run, or resume it from its checkpoint, or return it if it already finished.
    ``index=False`` writes the run folder only, leaving the runs folder's index to the caller.

    Under torchrun every process calls this and they train the run together (see distributed.py); rank 0
    writes the run folder and the others return the same run without writing anything.

    Args:
        config: the run's settings.
        runs_dir: the runs folder.
        progress: show a progress bar.
        log: where one-line messages go (default: printed above the progress bar when it is shown).
        index: register the run in the runs folder's index.
        on_epoch_end: ``on_epoch_end(run, epoch)``, called after every epoch the run records (see
            ``engine.loop.train_epochs``); it may raise ``KeyboardInterrupt`` to stop training as Ctrl-C
            does. Under torchrun it runs on rank 0 only, and every process must pass one (or none).
        restart: discard the files of a run that has not finished (a damaged checkpoint, say) and train it
            from the start; a finished run is never touched.
        dataset: your own data (``rethinkgen.data.from_arrays``) instead of ``config.dataset``; the run
            records it as ``arrays:NAME`` with the SHA-256 of the arrays in ``data_hash`` (and its run id).
    """
    config = with_arrays(config, dataset).validated().resolved()
    ctx = distributed.from_environment()
    if not ctx.is_main:
        progress, log = False, (lambda message: None)
    log = log or (lambda message: tqdm.write(message) if progress else None)
    ctx.join(device_type(config.device))
    try:
        return _train(config, runs_dir, progress, log, ctx, index, on_epoch_end, restart, dataset)
    except DamagedFile as damaged:
        raise DamagedFile(str(damaged) + ("" if restart else RESTART_HINT)) from None


def with_arrays(config: RunConfig, dataset: data.Dataset | None, data_hash: str | None = None) -> RunConfig:
    """``config`` on ``dataset`` (your arrays): ``arrays:NAME`` with the arrays' SHA-256 (``data_hash``, when
    already computed); ``config`` as it is for None.

    Args:
        config: the run's settings.
        dataset: your arrays (``rethinkgen.data.from_arrays``), or None.
        data_hash: the arrays' SHA-256 when already computed (None: computed here).
    """
    if dataset is None:
        return config
    if not isinstance(dataset, data.Dataset):
        raise RethinkgenError(f"dataset must be a Dataset (rethinkgen.data.from_arrays), not {type(dataset).__name__}")
    name = dataset.name if data.arrays.NAME_PATTERN.fullmatch(dataset.name) else "arrays"
    return config.replace(dataset=data.arrays.ARRAYS_PREFIX + name,
                          data_hash=data_hash or data.arrays.arrays_sha256(dataset))


def _train(config: RunConfig, runs_dir, progress, log, ctx: distributed.Context, index: bool = True,
           on_epoch_end: EpochHook | None = None, restart: bool = False,
           dataset: data.Dataset | None = None) -> RunResult:
    run_id = config.run_id()
    previous = ctx.on_main(lambda: finished_summary(Path(runs_dir) / run_id, restart))
    if previous is not None:
        log(f"run {run_id} already {previous['status']}; nothing to do")
        return RunResult(run_id, Path(runs_dir) / run_id, config, previous)

    # everything that can refuse the settings (device, data, crop, pad, the model for the data's shape)
    # is checked before anything is written, so a refused run leaves no folder behind
    device = ctx.device(resolve_device(config.device))
    clean, randomized, record = prepare_data(config, dataset)
    ctx.check_same(record.dataset_hash, "hash of the randomized data")
    device_data = training_data(clean, randomized, record, config, device)
    if ctx.active and not isinstance(device_data, DeviceData):
        raise RethinkgenError(f"dataset {config.dataset!r} is streamed from disk, which distributed training does "
                              "not support yet; train it in one process")
    model = seeded_model(config, device_data, device)
    store = ctx.on_main(lambda: RunStore(runs_dir, index=index))
    run_dir = store.run_dir(run_id)
    with contextlib.ExitStack() as held:
        def lock():
            run_dir.mkdir(exist_ok=True)
            held.enter_context(run_lock(run_dir, run_id))

        ctx.on_main(lock)  # rank 0 holds the lock; every rank learns if the run is busy
        return _train_locked(config, store, run_id, run_dir, device, randomized, record, device_data, model,
                             progress, log, ctx, on_epoch_end, restart)


def discard_run_files(run_dir: Path) -> None:
    """Remove every file of an unfinished run but its lock (call with the lock held): ``--restart``.

    Args:
        run_dir: the run's folder.
    """
    for path in run_dir.iterdir():
        if path.name != LOCK_NAME and (path.is_file() or path.is_symlink()):
            path.unlink()


def open_locked(config, run_id, run_dir, randomized, record, restart: bool = False, log=print) -> dict | None:
    """With the lock held: the run's summary if it finished meanwhile; else (after discarding its files if
    ``restart``) check or save its record."""
    finished = finished_summary(run_dir, restart)
    if finished is None:
        if restart and any(path.name != LOCK_NAME for path in run_dir.iterdir()):
            discard_run_files(run_dir)
            log(f"run {run_id}: discarded its checkpoint and logs (--restart); training it from the start")
        open_run_dir(config, run_id, run_dir, record, len(randomized.y_train))
    return finished


def open_run_dir(config: RunConfig, run_id: str, run_dir: Path, record: RandomizationRecord, n_train: int) -> None:
    """Save the randomization record and config, or check that a resumed run still sees the same data."""
    if (run_dir / "randomization.json").exists():
        saved = RandomizationRecord.load(run_dir)
        if saved.dataset_hash != record.dataset_hash:
            raise RethinkgenError(
                f"run {run_id}: the data now hash to {record.dataset_hash}, but the run started on "
                f"{saved.dataset_hash}; refusing to resume on different data (run again with --restart to train it from the start)")
    else:
        record.save(run_dir, n_train)
    write_json(run_dir / "config.json", config.to_dict())



def seeded_model(config: RunConfig, device_data, device) -> torch.nn.Module:
    """The run's model at its seeded initialization, on ``device``; writes nothing."""
    torch.manual_seed(config.init_seed)
    model = models.create_run_model(config.model, device_data.input_shape, device_data.num_classes, config.dropout)
    return model.to(device)


def save_initial(model: torch.nn.Module, run_dir: Path) -> None:
    """Keep the initial weights as initial.pt (distance-from-init measures need them), once: a resumed run
    keeps the first.

    Args:
        model: the run's network at its initialization.
        run_dir: the run's folder.
    """
    if not (run_dir / "initial.pt").exists():
        save_state(run_dir / "initial.pt", {"model": model.state_dict()})


def load_checkpoint(run_dir: Path) -> dict | None:
    """The last epoch's checkpoint (on the CPU), with its ``history`` and ``steps`` (the log rows it covers)
    and the logs rewritten to match it: the logs are appended to each epoch, so rows written after the
    checkpoint are dropped.

    Args:
        run_dir: the run's folder.
    """
    path = run_dir / "checkpoint.pt"
    state = load_state(path) if path.exists() else None
    counts = ("history", "steps") if state and "history" in state else ("epochs", "logged_steps")
    if state and not {"model", "optimizer", "step", *counts} <= set(state):
        raise DamagedFile(f"{path} is damaged: it lacks a part of a checkpoint (model, optimizer, step, "
                          f"{' or '.join(counts)})")
    if state and "history" not in state:  # it counts the rows (older checkpoints carry them)
        state["history"] = _logged_rows(run_dir / "metrics.jsonl", state.pop("epochs"))
        state["steps"] = _logged_rows(run_dir / "steps.jsonl", state.pop("logged_steps"))
    write_jsonl(run_dir / "metrics.jsonl", state["history"] if state else [])
    write_jsonl(run_dir / "steps.jsonl", state["steps"] if state else [])
    return state


def _logged_rows(path: Path, count: int) -> list[dict]:
    """The first ``count`` rows of a log, all written before the checkpoint that counts them."""
    rows = []
    try:
        with contextlib.suppress(FileNotFoundError), open(path) as handle:
            for line in itertools.islice(handle, int(count)):
                rows.append(json.loads(line))
    except (ValueError, TypeError) as error:  # a garbled line, or a count that is not a number
        raise DamagedFile(f"{path} is damaged: row {len(rows) + 1} cannot be read ({str(error)[:80]})") from None
    if len(rows) < count:
        raise DamagedFile(f"{path} has {len(rows)} rows but its run's checkpoint.pt covers {count}; the log was "
                          f"cut short")
    return rows


def save_epoch(run_dir: Path, history: list[dict], step_log: list[dict], logged_steps: int, state: dict) -> int:
    """Append the epoch's rows to the logs, then checkpoint; return how many step rows are now logged.

    The checkpoint counts the log rows it covers rather than carrying them (much cheaper than pickling the
    whole history every epoch; see docs/benchmarks.md), so a resumed run keeps exactly those rows and drops
    any written after it.

    Args:
        run_dir: the run's folder.
        history: the run's metrics rows, one per epoch so far.
        step_log: its step rows so far.
        logged_steps: how many of them are already in steps.jsonl.
        state: the checkpoint's tensors (model, optimizer, ...).
    """
    append_jsonl(run_dir / "metrics.jsonl", history[-1:])
    append_jsonl(run_dir / "steps.jsonl", step_log[logged_steps:])
    save_state(run_dir / "checkpoint.pt", {**state, "epochs": len(history), "logged_steps": len(step_log)})
    return len(step_log)


def record_failure(store: RunStore, config: RunConfig, message: str) -> dict:
    """Record a run that failed before it could start (a user's model factory raised): its folder holds its
    config and a summary with status "failed" and ``message``, and the index lists it, as for a run that
    failed while training. Returns the summary.

    Args:
        store: the runs folder.
        config: the run's settings.
        message: why it failed.
    """
    config = config.validated().resolved()
    run_id = config.run_id()
    run_dir = store.run_dir(run_id)
    run_dir.mkdir(exist_ok=True)
    write_json(run_dir / "config.json", config.to_dict())
    return write_summary(store, config, run_dir, {"run_id": run_id}, [], "failed", message)


def _train_locked(config, store, run_id, run_dir, device, randomized, record, device_data, model, progress, log,
                  ctx, on_epoch_end=None, restart: bool = False) -> RunResult:
    """With the run's lock held (by rank 0): train the run from its checkpoint, or from its start.

    ``store`` and ``run_dir`` are the runs folder and the run's folder; ``randomized`` and ``record`` its
    data (``prepare_data``), ``device_data`` the same on the device, ``model`` at its seeded
    initialization; ``ctx`` the distributed context; the rest as ``train``'s.
    """
    finished = ctx.on_main(lambda: open_locked(config, run_id, run_dir, randomized, record, restart, log))
    if finished is not None:
        return RunResult(run_id, run_dir, config, finished)

    if ctx.is_main:
        save_initial(model, run_dir)
    stepper = SingleStepper(config, device_data, model, device, ctx)
    # rank 0 reads the checkpoint and hands it to the others, so they need not see the run folder
    state = ctx.on_main(lambda: load_checkpoint(run_dir))
    stepper.load(state)
    base = summary_base(run_id, device, stepper.model, device_data, record, stepper.speedups, ctx.world_size)
    run = RunState(config, store, run_dir, device_data, stepper.model, base, save_epoch, log,
                   measure=measure_completed, write=ctx.is_main)
    if run.resume(state):
        log(f"run {run_id}: resuming after epoch {len(run.history)}")
    train_epochs(stepper, [run], config, desc=f"{run_id} {config.model} p={config.label_noise:g} {config.inputs}",
                 progress=progress, on_epoch_end=on_epoch_end)
    return RunResult(run_id, run_dir, config, run.summary)
