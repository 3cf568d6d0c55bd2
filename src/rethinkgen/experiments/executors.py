"""Where a sweep's runs train: in this process, in local worker processes, or as tasks on a Ray cluster.

Every executor takes the same jobs (a group of run configs, as dicts: one run, or compatible runs
trained as one ensemble) and yields ``(index, status, message)`` for each run as its job ends, so skipping, resuming, the progress bar and the summary live once, in
sweep.py. A run that fails, or whose worker dies, becomes a "failed" result and never stops the others.

GPUs: with ``runs_per_gpu=K`` the local executor starts K worker processes per visible GPU, each holding
one GPU (GPUs taken in turn), and Ray asks for 1/K of a GPU per run. In both cases the executor picks the
run's GPU; runs set to ``device: cpu`` stay on the CPU.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Iterator

import torch

from rethinkgen.checks import integer
from rethinkgen.choices import EXECUTORS
from rethinkgen.config import RunConfig
from rethinkgen.data.dataset import Dataset
from rethinkgen.engine.ensemble import train_ensemble
from rethinkgen.engine.trainer import train
from rethinkgen.errors import DamagedFile, RethinkgenError, choice_error, warn
from rethinkgen.store import INDEX_NAME, RunBusy, RunStore, read_json, read_summary

RAY_INSTALL = "pip install 'rethinkgen[ray]'"


def train_group(group: list[dict], runs_dir: str, threads: int | None, device: str | None = None,
                index: bool = True, restart: bool = False, dataset: Dataset | None = None) -> list[tuple[str, str]]:
    """Run one config, or several compatible ones as one ensemble (see engine/ensemble.py), in this process;
    return (status, message) for each. Never raises for a failing run.

    ``device``, when given, replaces the runs' device unless they ask for the CPU (the device is not
    part of the run id). ``index=False`` leaves the SQLite index to the caller (see ``_ray_task``).
    ``restart=True`` trains unfinished runs from the start (see ``train.train``). ``dataset``: your arrays
    (``rethinkgen.data.from_arrays``), for runs trained in this process.

    Args:
        group: the runs' settings, as ``RunConfig.to_dict()`` gives them.
        runs_dir: the runs folder.
        threads: torch threads for this process (None: left as they are).
        device: the device to train on (see above; None: the runs' own).
        index: register the runs in the index.
        restart: train unfinished runs from the start.
        dataset: your arrays, for every run.
    """
    if threads:
        torch.set_num_threads(threads)
    if device:
        group = [values if values["device"] in ("cpu", "mps") else {**values, "device": device} for values in group]
    try:
        configs = [RunConfig(**values).validated() for values in group]
        if len(configs) == 1:
            results = [train(configs[0], runs_dir, progress=False, index=index, restart=restart, dataset=dataset)]
        else:
            results = train_ensemble(configs, runs_dir, progress=False, index=index, restart=restart, dataset=dataset)
        return [(result.summary["status"], result.summary.get("message", "")) for result in results]
    except RunBusy as busy:
        return [("busy", str(busy))] * len(group)
    except RethinkgenError as error:
        return [("failed", str(error))] * len(group)
    except Exception as error:  # a failing run is recorded and reported, never allowed to stop the sweep
        return [("failed", f"{type(error).__name__}: {error}")] * len(group)


def check_options(executor: str, workers: int | None, runs_per_gpu: int | None, cpus_per_run: int | None,
                  address: str | None) -> None:
    """Refuse meaningless combinations before anything starts.

    Args:
        executor: ``local`` or ``ray``.
        workers: local processes training at once.
        runs_per_gpu: runs that share one GPU at once.
        cpus_per_run: CPU cores each run may use.
        address: the Ray cluster's address (Ray only).
    """
    if executor not in EXECUTORS:
        raise choice_error("executor", executor, EXECUTORS)
    for name, value in (("workers", workers), ("runs_per_gpu", runs_per_gpu), ("cpus_per_run", cpus_per_run)):
        if value is not None:
            integer(name, value, 1)
    if executor == "ray" and workers is not None:
        raise RethinkgenError("--workers is for the local executor; Ray runs as many runs at once as the "
                              "cluster's CPUs and GPUs allow (set each run's share with --cpus-per-run, --runs-per-gpu)")
    if executor == "local" and address is not None:
        raise RethinkgenError(f"--address {address} needs --executor ray")
    if runs_per_gpu is not None and workers is not None:
        raise RethinkgenError("give --workers N for runs on the CPU or --runs-per-gpu K for runs on GPUs, not both")


def execute(configs: list[dict], runs_dir: str, executor: str = "local", workers: int | None = None,
            runs_per_gpu: int | None = None, cpus_per_run: int | None = None, address: str | None = None,
            groups: list[list[int]] | None = None, restart: bool = False,
            dataset: Dataset | None = None) -> Iterator[tuple[int, str, str]]:
    """Train ``configs`` (run config dicts) into ``runs_dir``, one job per group of indices in ``groups``
    (default: each run alone); yield (index, status, message) as runs end. ``restart``: see ``train_group``.
    ``dataset`` (your arrays) trains in this process only: one local worker.

    Args:
        configs: the runs' settings, as ``RunConfig.to_dict()`` gives them.
        runs_dir: the runs folder.
        executor: ``local`` or ``ray``.
        workers: local processes training at once (None: one, in this process).
        runs_per_gpu: runs that share one GPU at once.
        cpus_per_run: CPU cores each run may use.
        address: the Ray cluster's address.
        groups: lists of indices into ``configs``, each trained as one job (an ensemble when it has several).
        restart: train unfinished runs from the start (see ``train_group``).
        dataset: your arrays, for every run.
    """
    check_options(executor, workers, runs_per_gpu, cpus_per_run, address)
    jobs = groups if groups is not None else [[i] for i in range(len(configs))]
    if executor == "ray":
        return _ray(configs, jobs, runs_dir, runs_per_gpu, cpus_per_run, address, restart)
    plan = local_plan(workers, runs_per_gpu, cpus_per_run, gpu_count())
    if dataset is not None and plan[0] > 1:
        raise RethinkgenError("arrays given in Python train in this process only: run the sweep with one worker, "
                              "or save them as an .npz file (numpy.savez) for several workers or Ray")
    return _local(configs, jobs, runs_dir, *plan, restart, dataset)


# ------------------------------------------------------------------------------------------------- local
def gpu_count() -> int:
    """The number of GPUs torch sees on this machine."""
    return torch.cuda.device_count()


def local_plan(workers: int | None, runs_per_gpu: int | None, cpus_per_run: int | None,
               gpus: int) -> tuple[int, list[str] | None, int | None]:
    """(worker processes, the GPU each worker holds or None, torch threads per run) for the local executor.

    Args:
        workers: local processes asked for (None: one); with ``runs_per_gpu`` it is ignored, one worker per slot.
        runs_per_gpu: runs that share one GPU at once: gpus * runs_per_gpu workers, each holding one GPU
            (None: no GPU assignment).
        cpus_per_run: torch threads per run (None: the CPU cores shared out among several workers, or left as
            they are for one).
        gpus: the GPUs on this machine.
    """
    slots = None
    if runs_per_gpu is not None:
        if gpus == 0:
            raise RethinkgenError(f"--runs-per-gpu {runs_per_gpu} needs a GPU, and none is visible here; "
                                  "for runs on the CPU use --workers N")
        slots = [f"cuda:{i % gpus}" for i in range(gpus * runs_per_gpu)]  # round robin: cuda:0, cuda:1, cuda:0, ...
        workers = len(slots)
    workers = workers or 1
    threads = cpus_per_run or (max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None)
    return workers, slots, threads


_SLOT: str | None = None  # the GPU this worker process holds


def _claim_slot(slots) -> None:
    global _SLOT
    _SLOT = slots.get()


def _train_in_slot(group: list[dict], runs_dir: str, threads: int | None, restart: bool = False) -> list[tuple[str, str]]:
    return train_group(group, runs_dir, threads, device=_SLOT, restart=restart)


def _local(configs, jobs, runs_dir, workers, slots, threads, restart=False,
           dataset=None) -> Iterator[tuple[int, str, str]]:
    if workers == 1:
        for job in jobs:
            results = train_group([configs[i] for i in job], runs_dir, threads, device=slots[0] if slots else None,
                                  restart=restart, dataset=dataset)
            yield from ((i, *result) for i, result in zip(job, results))
        return
    options = {}
    if slots:  # CUDA cannot be used in a forked child; each GPU worker is a fresh process holding one slot
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        for slot in slots:
            queue.put(slot)
        options = {"mp_context": context, "initializer": _claim_slot, "initargs": (queue,)}
    with ProcessPoolExecutor(max_workers=workers, **options) as pool:
        futures = {pool.submit(_train_in_slot, [configs[i] for i in job], runs_dir, threads, restart): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                results = future.result()
            except Exception as error:  # the worker process died (killed, out of memory)
                results = [("failed", f"{type(error).__name__}: {error}")] * len(job)
            yield from ((i, *result) for i, result in zip(job, results))


# --------------------------------------------------------------------------------------------------- ray
def import_ray():
    """The ``ray`` module; one clear error saying how to install it when it is missing."""
    try:
        import ray  # optional extra: rethinkgen[ray]
    except ImportError:
        raise RethinkgenError(f"--executor ray needs Ray, which is not installed; install it with: {RAY_INSTALL}") \
            from None
    return ray


def _ray_task(group: list[dict], runs_dir: str, threads: int, device: str | None,
              restart: bool = False) -> list[tuple[str, str]]:
    """One job (a run, or an ensemble of runs) on a Ray worker. The runs folder must be the same shared folder as the driver's: the
    driver created its index before submitting, so a node that does not see the index does not see the folder.
    The SQLite index is written by the driver only, since SQLite's locks do not hold across machines."""
    if not (Path(runs_dir) / INDEX_NAME).exists():
        return [("failed", (f"runs folder {runs_dir} is not visible on node {socket.gethostname()}: with Ray, "
                            "--runs must be a shared folder mounted at the same path on every node"))] * len(group)
    return train_group(group, runs_dir, threads, device=device, index=False, restart=restart)


def ray_wants_gpu(device: str, cluster_gpus: float) -> bool:
    """Whether a run on Ray asks for a GPU.

    Args:
        device: the run's device setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
        cluster_gpus: the GPUs the Ray cluster has.
    """
    return device.startswith("cuda") or (device == "auto" and cluster_gpus > 0)


def _ray(configs, jobs, runs_dir, runs_per_gpu, cpus_per_run, address, restart=False) -> Iterator[tuple[int, str, str]]:
    ray = import_ray()
    if not configs:
        return
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except Exception as error:  # no cluster there, refused, a bad token: Ray's reason, on one line
            cause = error.__cause__ or error
            where = f"the Ray cluster at {address}" if address else "Ray"
            raise RethinkgenError(f"cannot reach {where}: {type(cause).__name__}: {str(cause).splitlines()[0]}") \
                from None
    pending = []
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        if runs_per_gpu is not None and gpus == 0:
            raise RethinkgenError(f"--runs-per-gpu {runs_per_gpu} needs a GPU, and the Ray cluster has none")
        cpus = cpus_per_run or 1
        task = ray.remote(max_retries=0)(_ray_task)
        wants_gpu = [ray_wants_gpu(values["device"], gpus) for values in configs]
        for values, gpu in zip(configs, wants_gpu):
            if gpu and gpus == 0:
                raise RethinkgenError(f"a run asks for device {values['device']!r}, and the Ray cluster has no GPU")
        refs = {}
        for job in jobs:
            gpu = any(wants_gpu[i] for i in job)
            options = {"num_cpus": cpus, "num_gpus": 1 / (runs_per_gpu or 1) if gpu else 0}
            ref = task.options(**options).remote([configs[i] for i in job], runs_dir, cpus, "cuda" if gpu else None,
                                                 restart)
            refs[ref] = job
            pending.append(ref)  # cancelled in `finally` if the sweep stops before it ends
        store = RunStore(runs_dir)
        while pending:
            [done], pending = ray.wait(pending, num_returns=1)
            job = refs[done]
            try:
                results = ray.get(done)
            except ray.exceptions.RayError as error:  # the worker died or the node was lost
                results = [("failed", f"{type(error).__name__}: {str(error).splitlines()[0]}")] * len(job)
            for i, (status, message) in zip(job, results):
                if status != "busy":
                    _register_from_files(store, RunConfig(**configs[i]).run_id())
                yield i, status, message
    finally:
        for ref in pending:  # interrupted: stop what is still queued or training (runs resume next time)
            ray.cancel(ref)
        if started:
            ray.shutdown()


def _register_from_files(store, run_id: str) -> None:
    """Put a run trained elsewhere into the index, from the config and summary it wrote to its folder
    (a damaged file is named in a warning; the run stays out of the index)."""
    run_dir = store.run_dir(run_id)
    if (run_dir / "config.json").exists() and (run_dir / "summary.json").exists():
        try:
            store.register(run_id, read_json(run_dir / "config.json"), read_summary(run_dir))
        except DamagedFile as damaged:
            warn(f"{damaged}; run {run_id} is left out of the index")
