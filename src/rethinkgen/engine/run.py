"""One run as it trains: its bookkeeping, the same whether it trains alone or as a copy of an ensemble.

A :class:`RunState` holds what a run owns apart from its weights: its folder and summary, its data, the
learning rate of each epoch, the order and augmentation draws, the step log and the divergence check,
the history rows, the checkpoint each epoch, stop at fit, and its status.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch

from rethinkgen.config import RunConfig
from rethinkgen.engine import tensorboard
from rethinkgen.engine.provenance import SCHEMA_VERSION
from rethinkgen.engine.seeds import epoch_order
from rethinkgen.engine.summary import write_summary
from rethinkgen.store import RunStore, append_jsonl

INTERRUPTED = "interrupted; run the same command again to resume"


class RunState:
    """One run's files, data, history and status while it trains.

    Args:
        config: the run's resolved settings.
        store: the runs folder whose index lists it (None where this process writes nothing).
        run_dir: the run's folder.
        data: its training data on the device (``DeviceData`` or ``StreamedData``).
        model: the module that holds its weights whenever a checkpoint is taken (the complexity measures
            of a completed run measure it).
        base: the summary keys fixed for the whole run (``engine.summary.summary_base``).
        save_epoch: ``save_epoch(run_dir, history, step_log, logged_steps, state) -> logged step rows``:
            appends the epoch's rows to the logs and writes the checkpoint ``state``
            (``rethinkgen.engine.trainer.save_epoch``).
        log: where one-line messages go.
        measure: ``measure(model, data, run_dir, history, config) -> dict``: the ``measure_<name>`` summary
            keys of the completed run (``rethinkgen.measures.runs.measure_completed``); None takes none.
        write: write the run's files (False on the processes of a distributed run other than rank 0).

    Attributes:
        history: the metrics rows, one per epoch recorded.
        step_log: the step rows (running mean training loss every ``log_every`` steps).
        step: the optimizer steps taken.
        status: ``running`` while it trains, then ``complete``, ``diverged``, ``interrupted`` or ``failed``.
        summary: the summary last written (or, without ``write``, computed).
    """

    def __init__(self, config: RunConfig, store: RunStore | None, run_dir: Path, data, model: torch.nn.Module,
                 base: dict, save_epoch: Callable, log: Callable[[str], None], measure: Callable | None = None,
                 write: bool = True):
        self.config, self.store, self.run_dir, self.data, self.model = config, store, run_dir, data, model
        self.base, self.save_epoch, self.log, self.measure, self.write = base, save_epoch, log, measure, write
        self.run_id = config.run_id()
        self.history, self.step_log, self.logged_steps, self.step = [], [], 0, 0
        self.wall_seconds = 0.0
        self.status, self.message, self.measured, self.summary = "running", "", {}, {}
        self.board = None  # the TensorBoard writer (config.tensorboard), opened at the first epoch recorded
        if config.tensorboard and write:
            tensorboard.check_available()

    def resume(self, state: dict | None) -> bool:
        """Take the history, step log and step count of a checkpoint (``train.load_checkpoint``'s
        dict; None for a fresh run). Returns whether there was one."""
        if not state:
            return False
        self.history, self.step_log, self.step = state["history"], state["steps"], state["step"]
        self.logged_steps = len(self.step_log)
        self.wall_seconds = self.history[-1]["wall_seconds"] if self.history else 0.0
        return True

    def lr(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (from 0): ``lr * lr_decay ** epoch``."""
        return self.config.lr * self.config.lr_decay ** epoch

    def draw(self, epoch: int, device) -> tuple[torch.Generator, torch.Tensor]:
        """``(generator, order)`` of ``epoch``: the data order on ``device`` and the CPU generator that
        drew it, from which the epoch's augmentation is drawn."""
        return epoch_order(self.config.order_seed, epoch, self.data.num_train, device)

    def log_loss(self, epoch: int, position: float, loss: float) -> bool:
        """Add a step row (the mean training loss since the last one); a loss that is not finite makes
        the run diverge. Returns whether the run trains on.

        Args:
            epoch: the epoch (from 0).
            position: the epochs done so far, fractional (the row's ``epoch``).
            loss: the mean training loss.
        """
        self.step_log.append({"step": self.step, "epoch": position, "loss": loss})
        if math.isfinite(loss):
            return True
        self.diverge(f"training loss became {loss} at step {self.step} (epoch {epoch + 1})")
        return False

    def end_epoch(self, epoch: int, metrics: dict, online_correct: int, train_seconds: float, elapsed: float,
                  checkpoint: Callable[[], dict]) -> None:
        """Record an epoch: its history row, log rows, checkpoint and summary; then stop at fit if asked.
        A training loss that is not finite makes the run diverge instead.

        Args:
            epoch: the epoch (from 0).
            metrics: its evaluation (``engine.evaluate.metrics_from_logits``'s keys).
            online_correct: training examples classified right in the minibatches as they trained.
            train_seconds: the time the epoch's steps took.
            elapsed: the time the epoch took, its evaluation included.
            checkpoint: returns the weights and optimizer state to checkpoint (``model``, ``optimizer``).
        """
        if not math.isfinite(metrics["train_loss"]):
            self.diverge(f"training loss became {metrics['train_loss']} at step {self.step} (epoch {epoch + 1})")
            return
        self.wall_seconds += elapsed
        n = self.data.num_train
        # the mean minibatch accuracy while training (on augmented images, in train mode): Table 4's measure
        metrics["online_accuracy"] = online_correct / n
        self.history.append({"epoch": epoch + 1, "step": self.step, "lr": self.lr(epoch), **metrics,
                             "train_seconds": train_seconds, "images": n, "images_per_second": n / train_seconds,
                             "wall_seconds": self.wall_seconds})
        if self.write:
            self.save_epoch(self.run_dir, self.history, self.step_log, self.logged_steps,
                            {**checkpoint(), "step": self.step, "schema_version": SCHEMA_VERSION})
        if self.write and self.config.tensorboard:
            if self.board is None:
                fitted = any(row["train_accuracy"] >= self.config.fit_threshold for row in self.history[:-1])
                self.board = tensorboard.BoardWriter(self.run_dir, self.config.fit_threshold, fitted)
            self.board.epoch(self.history[-1], self.step_log[self.logged_steps:])
        self.logged_steps = len(self.step_log)
        self.finish("running")
        if metrics["train_accuracy"] >= self.config.fit_threshold and self.config.stop_at_fit:
            self.finish("complete", f"stopped at fit after epoch {epoch + 1}")

    def diverge(self, reason: str) -> None:
        """Stop the run as diverged: write the step rows not yet logged, then the summary."""
        if self.write:
            append_jsonl(self.run_dir / "steps.jsonl", self.step_log[self.logged_steps:])
        self.finish("diverged", f"diverged: {reason}")
        self.log(f"run {self.run_id} diverged: {reason}")

    def finish(self, status: str, message: str = "") -> dict:
        """Set the status and write the summary; a completed run first gets its complexity measures."""
        self.status, self.message = status, message
        if status != "running" and self.board is not None:
            self.board.close()
        if status == "complete" and self.config.measures != "none" and self.write and self.measure is not None:
            self.measured = self.measure(self.model, self.data, self.run_dir, self.history, self.config)
        self.summary = write_summary(self.store, self.config, self.run_dir, self.base, self.history, status,
                                     message, write=self.write, extra=self.measured)
        return self.summary
