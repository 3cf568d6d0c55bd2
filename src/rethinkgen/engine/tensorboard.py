"""TensorBoard event files in a run's folder (``tensorboard: true``; ``pip install 'rethinkgen[tensorboard]'``).

Per logged step: ``train/loss_running`` (the running mean training loss). Per epoch, at the step it ended:
``train/loss``, ``train/accuracy``, ``test/accuracy``, ``test/loss``, ``lr`` and ``images_per_second``. When
the run first reaches its fit threshold: ``fit/epoch`` (the epoch) and a text ``fit``. ``tensorboard --logdir
runs`` shows every run of a runs folder side by side, each named by its run id.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rethinkgen.errors import RethinkgenError

MISSING = "tensorboard: true needs the tensorboard extra: pip install 'rethinkgen[tensorboard]'"
EPOCH_SCALARS = {"train/loss": "train_loss", "train/accuracy": "train_accuracy", "test/loss": "test_loss",
                 "test/accuracy": "test_accuracy", "lr": "lr", "images_per_second": "images_per_second"}


def check_available() -> None:
    """Refuse, in one line, when the tensorboard package is not installed."""
    if importlib.util.find_spec("tensorboard") is None:
        raise RethinkgenError(MISSING)


class BoardWriter:
    """Writes one run's event files into its folder; opened at the first record, closed by ``close``.

    Args:
        run_dir: the run's folder (the event files go there).
        fit_threshold: the training accuracy at which the run counts as fitted.
        fitted: whether an epoch already recorded reached it (a resumed run), so the fit is marked once.
    """

    def __init__(self, run_dir: Path, fit_threshold: float, fitted: bool = False):
        self.run_dir, self.fit_threshold, self.fitted = Path(run_dir), fit_threshold, fitted
        self._writer = None

    def _open(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # needs the optional tensorboard extra

            self._writer = SummaryWriter(log_dir=str(self.run_dir))
        return self._writer

    def epoch(self, row: dict, step_rows: list[dict]) -> None:
        """Record an epoch: its step rows (``step``, ``loss``) and its history row (``epoch``, ``step``,
        the metrics); mark the fit when this epoch reaches the threshold first. Flushes to disk."""
        writer = self._open()
        for step_row in step_rows:
            writer.add_scalar("train/loss_running", step_row["loss"], step_row["step"])
        step = row["step"]
        for tag, key in EPOCH_SCALARS.items():
            if row.get(key) is not None:
                writer.add_scalar(tag, row[key], step)
        writer.add_scalar("epoch", row["epoch"], step)
        if not self.fitted and row["train_accuracy"] >= self.fit_threshold:
            self.fitted = True
            writer.add_scalar("fit/epoch", row["epoch"], step)
            writer.add_text("fit", f"fitted its training labels at epoch {row['epoch']} (step {step}): train "
                                   f"accuracy {row['train_accuracy']:.4f} >= {self.fit_threshold:g}", step)
        writer.flush()

    def close(self) -> None:
        """Flush and close the event file (a later epoch opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
