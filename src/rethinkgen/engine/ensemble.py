"""K runs of one architecture trained as one batched model.

A randomization study is many small runs of the same network that differ only in seeds, label noise or
input randomization. Here they train together through the engine's one epoch loop
(``engine.loop.train_epochs``) with a ``StackedStepper`` (engine/stacked.py: one ``vmap``-ed forward
and backward pass and one optimizer step for all of them). Each copy keeps its own data, data order,
augmentation draws, labels, metrics, checkpoint and run folder (a ``RunState``), drawn from its own seeds
exactly as ``train.train`` draws them, so the runs it writes are ordinary runs: a copy's files, summary keys and
(up to floating-point summation order) metrics are those of the same run trained alone, and either trainer
can resume the other's checkpoints.

Copies must agree on everything but ``GROUP_FREE`` settings, and train without dropout (its random masks
under ``vmap`` could not match a run trained alone).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from rethinkgen.checks import integer
from rethinkgen.config import RunConfig
from rethinkgen.data.arrays import arrays_sha256
from rethinkgen.data.dataset import Dataset
from rethinkgen.engine import distributed
from rethinkgen.engine.data import DeviceData, resolve_device
from rethinkgen.engine.loop import EpochHook, train_epochs
from rethinkgen.engine.run import RunState
from rethinkgen.engine.speedups import Speedups
from rethinkgen.engine.stacked import StackedStepper
from rethinkgen.engine.summary import summary_base
from rethinkgen.engine.trainer import (
    RESTART_HINT,
    RunResult,
    load_checkpoint,
    open_locked,
    prepare_data,
    save_epoch,
    save_initial,
    seeded_model,
    with_arrays,
)
from rethinkgen.errors import DamagedFile, RethinkgenError
from rethinkgen.measures.runs import measure_completed
from rethinkgen.store import RunBusy, RunStore, finished_summary, run_lock

# settings in which the copies of one ensemble may differ
GROUP_FREE = ("seed", "randomization_seed", "init_seed", "order_seed", "label_noise", "label_noise_mode", "inputs",
              "corrupt_test_labels", "fit_threshold", "stop_at_fit", "data_dir", "download", "measures")


def group_key(config: RunConfig) -> str | None:
    """Runs with the same key can share an ensemble; None for a run that must be trained alone.

    Args:
        config: the run's settings.
    """
    config = config.resolved()
    if config.dropout or config.dataset == "imagefolder":  # masks under vmap; data streamed from disk
        return None
    return json.dumps({k: v for k, v in config.to_dict().items() if k not in GROUP_FREE}, sort_keys=True)


def group_configs(configs: list[RunConfig], size: int) -> list[list[RunConfig]]:
    """Compatible runs in groups of at most ``size``, in their original order; incompatible runs alone.

    Args:
        configs: the runs' settings.
        size: the largest group (1: every run alone).
    """
    integer("ensemble size", size, 1)
    groups, open_groups = [], {}
    for config in configs:
        key = group_key(config) if size > 1 else None
        if key is None:
            groups.append([config])
            continue
        if key not in open_groups or len(open_groups[key]) >= size:
            open_groups[key] = []
            groups.append(open_groups[key])
        open_groups[key].append(config)
    return groups


def train_ensemble(configs: list[RunConfig], runs_dir: str | Path = "runs", progress: bool = True,
                   log: Callable[[str], None] | None = None, index: bool = True, on_epoch_end: EpochHook | None = None,
                   restart: bool = False, dataset: Dataset | None = None) -> list[RunResult]:
    """Train ``configs`` (compatible runs, see ``group_key``) as one batched model; resume or skip as ``train`` does.

    Returns one RunResult per config, in order. A run another process is training comes back with
    status "busy" (not written to its folder); a run whose files are damaged comes back "failed" with the
    reason; the others go on without them.

    Args:
        configs: the runs' settings; they may differ only in ``GROUP_FREE`` settings.
        runs_dir: the runs folder.
        progress: show a progress bar.
        log: where one-line messages go (default: printed above the progress bar when it is shown).
        index: register the runs in the runs folder's index (False: write the run folders only, leaving
            the index to the caller, as ``train`` does).
        on_epoch_end: ``on_epoch_end(run, epoch)``, called for each run after every epoch it records (see
            ``engine.loop.train_epochs``); it may raise ``KeyboardInterrupt`` to stop training as Ctrl-C does.
        restart: discard the files of the runs that have not finished and train them from the start (as
            ``train`` does).
        dataset: your own data (``rethinkgen.data.from_arrays``) for every run, as ``train`` takes it.
    """
    data_hash = None if dataset is None else arrays_sha256(dataset)
    configs = [with_arrays(config, dataset, data_hash).validated().resolved() for config in configs]
    keys = {group_key(config) for config in configs}
    if None in keys or len(keys) != 1:
        raise RethinkgenError("an ensemble needs runs without dropout that differ only in "
                              + ", ".join(GROUP_FREE) + "; train the others one by one")
    if distributed.from_environment().active:
        raise RethinkgenError("an ensemble does not train under torchrun; train its runs one by one there")
    log = log or (lambda message: tqdm.write(message) if progress else None)
    store = RunStore(runs_dir, index=index)
    results, pending = _finished_or_pending(configs, store, restart)
    with contextlib.ExitStack() as locks:
        trainable = _lock_each(pending, store, locks, results)
        device = resolve_device(configs[0].device)
        copies = _prepare_each(trainable, store, device, log, restart, dataset, results)
        _share_identical_inputs([run.data for run, _ in copies])
        # copies resumed from different epochs cannot step together: train each such group on its own
        by_epoch: dict[int, list] = {}
        for run, state in copies:
            by_epoch.setdefault(len(run.history), []).append((run, state))
        for start_epoch, group in sorted(by_epoch.items()):
            _train_group(group, start_epoch, device, progress, log, on_epoch_end)
            for run, _ in group:
                results[run.run_id] = RunResult(run.run_id, run.run_dir, run.config, run.summary)
    return [results[config.run_id()] for config in configs]


def _finished_or_pending(configs: list[RunConfig], store: RunStore,
                         restart: bool) -> tuple[dict[str, RunResult], list[RunConfig]]:
    """The results of the runs already finished (or damaged), by run id, and the others to train (each once)."""
    results, pending = {}, {}
    for config in configs:
        run_id = config.run_id()
        try:
            previous = finished_summary(store.run_dir(run_id), restart)
        except DamagedFile as error:
            results[run_id] = _damaged(config, store, error, restart)
            continue
        if previous is not None:
            results[run_id] = RunResult(run_id, store.run_dir(run_id), config, previous)
        else:
            pending.setdefault(run_id, config)
    return results, list(pending.values())


def _lock_each(pending: list[RunConfig], store: RunStore, locks: contextlib.ExitStack,
               results: dict[str, RunResult]) -> list[RunConfig]:
    """Take the lock of each pending run (held until ``locks`` closes); a run another process holds goes
    into ``results`` as "busy". Returns the runs whose lock this process holds."""
    trainable = []
    for config in pending:
        run_dir = store.run_dir(config.run_id())
        run_dir.mkdir(exist_ok=True)
        try:
            locks.enter_context(run_lock(run_dir, config.run_id()))
            trainable.append(config)
        except RunBusy as busy:
            results[config.run_id()] = RunResult(config.run_id(), run_dir, config,
                                                 {"status": "busy", "message": str(busy)})
    return trainable


def _prepare_each(trainable: list[RunConfig], store: RunStore, device, log, restart: bool, dataset,
                  results: dict[str, RunResult]) -> list[tuple[RunState, dict | None]]:
    """The copies to train (see ``_prepare``); a damaged run, or one another process finished meanwhile,
    goes into ``results`` instead."""
    copies = []
    for config in trainable:
        try:
            copy = _prepare(config, store, device, log, restart, dataset)
        except DamagedFile as error:
            results[config.run_id()] = _damaged(config, store, error, restart)
            continue
        if isinstance(copy, RunResult):  # finished by another process meanwhile
            results[config.run_id()] = copy
        else:
            copies.append(copy)
    return copies


def _damaged(config: RunConfig, store: RunStore, error: DamagedFile, restart: bool) -> RunResult:
    """The result of a run whose files cannot be read: failed, with the reason and the way out."""
    message = str(error) + ("" if restart else RESTART_HINT)
    return RunResult(config.run_id(), store.run_dir(config.run_id()), config, {"status": "failed", "message": message})


def _speedups(config: RunConfig, device, model) -> Speedups:
    """bf16 autocast when the run asks for it (it is part of the run); no channels_last or compile here."""
    return Speedups.resolve(config.amp, "off", "off", device, model)


def _prepare(config: RunConfig, store: RunStore, device, log, restart: bool,
             dataset=None) -> tuple[RunState, dict | None] | RunResult:
    """With its lock held: a copy's data, model (at its checkpoint's weights) and RunState, and its
    checkpoint (None for a fresh run); or the run's result if another process finished it meanwhile."""
    run_id = config.run_id()
    run_dir = store.run_dir(run_id)
    clean, randomized, record = prepare_data(config, dataset)
    finished = open_locked(config, run_id, run_dir, randomized, record, restart, log)
    if finished is not None:
        return RunResult(run_id, run_dir, config, finished)
    data = DeviceData(clean, randomized, record, config, device)
    model = seeded_model(config, data, device)
    save_initial(model, run_dir)
    state = load_checkpoint(run_dir)
    if state:
        model.load_state_dict(state["model"])
    base = summary_base(run_id, device, model, data, record, _speedups(config, device, model))
    run = RunState(config, store, run_dir, data, model, base, save_epoch, log, measure=measure_completed)
    run.resume(state)
    return run, state


def _share_identical_inputs(device_datas: list[DeviceData]) -> None:
    """Copies that train on the same images (e.g. differing only in labels) point at one tensor."""
    for i, current in enumerate(device_datas):
        for earlier in device_datas[:i]:
            for name in ("x_train_u8", "x_train", "x_test"):
                mine, theirs = getattr(current, name), getattr(earlier, name)
                if mine is not theirs and mine.shape == theirs.shape and torch.equal(mine, theirs):
                    setattr(current, name, theirs)


def _train_group(copies: list[tuple[RunState, dict | None]], start_epoch: int, device, progress: bool, log,
                 on_epoch_end: EpochHook | None) -> None:
    """Train copies resumed at the same epoch together."""
    runs = [run for run, _ in copies]
    config = runs[0].config
    if start_epoch:
        log(f"ensemble of {len(runs)} runs: resuming after epoch {start_epoch}")
    stepper = StackedStepper([run.model for run in runs], [run.data for run in runs],
                             [state["optimizer"] if state else None for _, state in copies], config,
                             _speedups(config, device, runs[0].model), device)
    train_epochs(stepper, runs, config, desc=f"ensemble of {len(runs)} {config.model}", progress=progress,
                 on_epoch_end=on_epoch_end)
