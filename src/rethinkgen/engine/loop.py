"""The epoch loop: one loop trains one run or K runs at once; only the step differs.

Per epoch: set the epoch's learning rate, draw each run's data order, take the steps (logging the mean
loss every ``log_every`` steps and dropping a run whose loss stops being finite), evaluate, and let each
run record its epoch (history row, checkpoint, summary, stop at fit). A *stepper* does what depends on
how the runs are held: ``SingleStepper`` (engine/single.py) trains one model, in one process or over a
torchrun launch; ``StackedStepper`` (engine/stacked.py) trains K copies stacked under ``vmap``.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator, Protocol

import torch
from tqdm.auto import tqdm

from rethinkgen.config import RunConfig
from rethinkgen.engine.run import INTERRUPTED, RunState

EpochHook = Callable[[RunState, int], None]


class Stepper(Protocol):
    """What the loop asks of the runs' models and optimizer; copy ``k`` trains ``runs[k]``."""

    device: torch.device

    def begin_epoch(self, epoch: int, lr: float, draws: list[tuple[torch.Generator, torch.Tensor]]) -> None:
        """Set the learning rate and train mode, and take each copy's (generator, order) of the epoch."""

    def steps(self) -> Iterator[int]:
        """Take the epoch's optimizer steps, yielding the global batch size after each."""

    def mean_losses(self) -> list[float]:
        """Each copy's mean training loss since the last call."""

    def online_correct(self) -> list[int]:
        """Each copy's count of training examples classified right as they trained this epoch."""

    def evaluate(self) -> list[dict]:
        """Each copy's epoch-end metrics."""

    def checkpoint(self, k: int) -> dict:
        """Copy ``k``'s ``model`` and ``optimizer`` state dicts, as a run trained alone saves them."""

    def keep(self, indices: list[int]) -> None:
        """Go on with the copies at ``indices`` only."""

    def on_main(self, work: Callable):
        """Run ``work()`` in the process that writes the runs; give its result (or exception) to all."""


def train_epochs(stepper: Stepper, runs: list[RunState], config: RunConfig, desc: str = "",
                 progress: bool = False, on_epoch_end: EpochHook | None = None) -> None:
    """Train ``runs`` from the epoch after their last recorded one until ``config.epochs``, each run
    ending complete (also when stopped at fit), diverged, interrupted (Ctrl-C) or failed.

    Args:
        stepper: the runs' models and optimizer; copy ``k`` is ``runs[k]``.
        runs: the runs, all resumed at the same epoch (``RunState.resume``).
        config: the settings the runs share (epochs, batch size, ``log_every``).
        desc: the progress bar's label.
        progress: show a progress bar.
        on_epoch_end: ``on_epoch_end(run, epoch)`` is called for each run after every epoch it recorded
            (its history row, checkpoint and summary are written), ``epoch`` counting from 1. It may raise
            ``KeyboardInterrupt`` to stop training as Ctrl-C does: the runs still training are left
            ``interrupted``, to resume later; any other exception leaves them ``failed``. It runs through
            ``stepper.on_main`` (on rank 0 alone under torchrun, where every process must pass one or none).
    """
    runs = list(runs)  # the runs still training: every change to it goes with stepper.keep
    start_epoch = len(runs[0].history)
    for run in runs:
        run.finish("running")
    bar = tqdm(range(start_epoch, config.epochs), initial=start_epoch, total=config.epochs, disable=not progress,
               desc=desc, leave=False, unit="epoch", dynamic_ncols=True)
    try:
        for epoch in bar:
            if not runs:
                break
            recorded = _epoch(stepper, runs, epoch, config)
            _show(bar, runs, recorded)
            for run in recorded if on_epoch_end else ():
                stepper.on_main(lambda run=run, epoch=epoch: on_epoch_end(run, epoch + 1))
        for run in runs:
            run.finish("complete")
    except KeyboardInterrupt:
        for run in runs:
            run.finish("interrupted", INTERRUPTED)
        raise
    except Exception as error:
        for run in runs:
            run.finish("failed", f"{type(error).__name__}: {error}")
        raise
    finally:
        bar.close()


def _epoch(stepper: Stepper, runs: list[RunState], epoch: int, config: RunConfig) -> list[RunState]:
    """Train and record one epoch; return the runs that recorded it."""
    started = time.perf_counter()
    stepper.begin_epoch(epoch, runs[0].lr(epoch), [run.draw(epoch, stepper.device) for run in runs])
    _steps(stepper, runs, epoch, config.log_every)
    if not runs:
        return []
    train_seconds = time.perf_counter() - started
    online_correct = stepper.online_correct()
    metrics = stepper.evaluate()
    elapsed = time.perf_counter() - started
    for k, run in enumerate(runs):
        run.end_epoch(epoch, metrics[k], online_correct[k], train_seconds, elapsed, lambda k=k: stepper.checkpoint(k))
    recorded = [run for run in runs if len(run.history) == epoch + 1]
    _keep(stepper, runs, [k for k, run in enumerate(runs) if run.status == "running"])
    return recorded


def _steps(stepper: Stepper, runs: list[RunState], epoch: int, log_every: int) -> None:
    """The epoch's steps, with a step row every ``log_every`` steps; a run whose loss is not finite stops."""
    n, seen = runs[0].data.num_train, 0
    for size in stepper.steps():
        step = runs[0].step + 1
        for run in runs:
            run.step = step
        if step % log_every == 0:
            losses = stepper.mean_losses()
            alive = [k for k, run in enumerate(runs) if run.log_loss(epoch, epoch + seen / n, losses[k])]
            _keep(stepper, runs, alive)
            if not runs:
                return
        seen += size


def _keep(stepper: Stepper, runs: list[RunState], indices: list[int]) -> None:
    """Drop the runs not at ``indices`` from ``runs`` (in place) and from the stepper."""
    if len(indices) < len(runs):
        stepper.keep(indices)
        runs[:] = [runs[k] for k in indices]


def _show(bar, runs: list[RunState], recorded: list[RunState]) -> None:
    if len(recorded) == 1:
        last = recorded[0].history[-1]
        bar.set_postfix(loss=f"{last['train_loss']:.3f}", train=f"{last['train_accuracy']:.3f}",
                        test=f"{last['test_accuracy']:.3f}", refresh=False)
    else:
        bar.set_postfix(training=len(runs), refresh=False)
