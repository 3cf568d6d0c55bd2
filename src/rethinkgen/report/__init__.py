"""The report's building blocks: a stored run as reports see it, a section (title, text, tables, figures),
and the numbers and groupings every section uses.

The sections themselves live with their experiments (``rethinkgen.experiments.presets``, one module per
figure or table of the paper); ``rethinkgen.report.document`` gathers them from a runs folder and writes
``report.html`` and ``report.md``.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rethinkgen.errors import RethinkgenError, warn
from rethinkgen.outcome import DID_NOT_FIT, did_not_fit
from rethinkgen.store import StoredRun, is_finished, read_json, read_summary, run_path

HAS_HISTORY = ("complete", "running", "interrupted")  # statuses whose per-epoch rows a section draws
PAPER_DATASET = "cifar10"  # the paper's numbers stand beside measured ones only on this data (Table 2: ImageNet)


@dataclass
class Run(StoredRun):
    """A run of the store as a report sees it.

    Args:
        run_id: its id (its folder's name).
        label: what the sweep calls it (a row of a table, a curve of a figure).
        group: the facts its section sorts by (model, seed, label noise, ...), from the sweep manifest.
        config: its settings.
        status: pending, running, complete, interrupted, diverged, failed or unreadable.
        summary: its summary.json (empty before it ends).
        run_dir: its folder.
    """

    run_id: str
    label: str
    group: dict
    config: dict
    status: str
    summary: dict
    run_dir: Path

    def get(self, key):
        """A value of the summary, or None while the run has not finished."""
        return self.summary.get(key) if is_finished(self.status) else None

    @property
    def history(self) -> list[dict]:
        """Its per-epoch rows if it has trained (complete, running or interrupted); [] for a run that is
        pending, failed, diverged or unreadable, whose rows would not be a curve worth drawing."""
        return self.metrics if self.status in HAS_HISTORY else []


@dataclass
class Section:
    """A part of the report.

    Args:
        title: its heading.
        text: a paragraph under the heading.
        tables: (headers, rows) of each table, every cell a string.
        figures: its PNG files (an SVG of each lies beside it).
    """

    title: str
    text: str = ""
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def load_run(runs_dir: Path, run_id: str, label: str = "", group: dict | None = None, config: dict | None = None) -> Run:
    """A run of the store as reports see it; a run whose files cannot be read is "unreadable" (with a warning)."""
    run_dir = run_path(runs_dir, run_id)
    try:
        summary = read_summary(run_dir) or {}
        if not config and (run_dir / "config.json").exists():
            config = read_json(run_dir / "config.json")
    except RethinkgenError as damaged:
        warn(f"{damaged}; the report shows run {run_id} as unreadable")
        return Run(run_id, label, group or {}, config or {}, "unreadable", {}, run_dir)
    return Run(run_id, label, group or {}, config or {}, summary.get("status", "pending"), summary, run_dir)


def mean_sd(values: Iterable[float | None], digits: int = 3, scale: float = 1.0) -> str:
    """Values of several seeds as ``mean ± sd (n=k)``, one value as itself, none as ``-``.

    Args:
        values: the numbers (None are left out: runs that did not finish).
        digits: decimals shown.
        scale: a factor applied first (100 for percentages).
    """
    values = [v * scale for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f} (n={len(values)})"


def status_of(runs: list[Run]) -> str:
    """The runs' statuses counted (``3 complete (1 did not fit), 1 failed``)."""
    counts = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    unfitted = sum(did_not_fit(run.status, run.summary) for run in runs)
    return ", ".join(f"{n} {status}" + (f" ({unfitted} {DID_NOT_FIT})" if status == "complete" and unfitted else "")
                     for status, n in sorted(counts.items()))


def by_label(runs: list[Run]) -> dict[str, list[Run]]:
    """The runs by label, in order of first appearance (the seeds of one setting together)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    return groups


def by_model_and_label(runs: list[Run]) -> dict[tuple[str, str], list[Run]]:
    """Seeds of one row: the same label can name a row of several models (e.g. Table 1's settings)."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.group.get("model", run.config.get("model")), run.label), []).append(run)
    return groups


def by_model(runs: list[Run]) -> dict[str, list[Run]]:
    """The runs by model, in order of first appearance."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group.get("model", run.config.get("model", "?")), []).append(run)
    return groups


def is_paper_data(runs: list[Run]) -> bool:
    """True if every run trained on all of the paper's data, so that the paper's numbers apply."""
    return bool(runs) and all(run.config.get("dataset") == PAPER_DATASET and not run.config.get("subset")
                              for run in runs)


def yes_no(flag) -> str:
    """``yes`` or ``no``, as the paper's tables print a setting."""
    return "yes" if flag else "no"


def first_epoch(rows: list[dict], key: str, level: float) -> int | None:
    """The first epoch whose ``key`` reaches ``level``; None if none does.

    Args:
        rows: a run's per-epoch history rows (with ``epoch`` and ``key``).
        key: the value to watch, e.g. ``unchanged_accuracy``.
        level: the value it must reach.
    """
    return next((row["epoch"] for row in rows if row.get(key) is not None and row[key] >= level), None)


def file_part(text: str) -> str:
    """A model name as a plain part of a file name (a user's model is ``package.module:factory``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:80]


def section_sweep(name: str, runs: list[Run], out: Path) -> Section:
    """The section of a sweep that is not a preset: one row per label, seeds as mean and spread.

    Args:
        name: the sweep's name.
        runs: its runs.
        out: the folder of the report's figures (unused: this section has none).
    """
    headers = ["run", "train acc", "test acc", "gap", "steps to fit", "status"]
    rows = [[label, mean_sd([r.get("train_accuracy") for r in group]), mean_sd([r.get("test_accuracy") for r in group]),
             mean_sd([r.get("generalization_gap") for r in group]), mean_sd([r.get("steps_to_fit") for r in group], 0),
             status_of(group)] for label, group in by_label(runs).items()]
    return Section(f"Sweep {name}", "", [(headers, rows)])

