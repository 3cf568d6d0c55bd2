"""The run store: one folder per run (named by its config hash) and one SQLite index for all of them.

A run folder holds ``config.json``, ``randomization.json``/``.npz``, ``metrics.jsonl`` (one row per
epoch), ``steps.jsonl`` (running mean training loss), ``summary.json``, ``initial.pt`` and
``checkpoint.pt``, and ``measures.json`` (the complexity measures of a completed run). Every file is written under a temporary name and renamed, so a crash never leaves a
half-written file. ``index.sqlite`` (WAL mode) lists every run with its config and summary.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from rethinkgen.errors import RethinkgenError

INDEX_NAME = "index.sqlite"
SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, status TEXT NOT NULL, config TEXT NOT NULL, summary TEXT NOT NULL,
    updated REAL NOT NULL)"""
BUSY_TIMEOUT_S = 60  # concurrent writers wait this long for the lock


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: Path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def append_jsonl(path: Path, rows: list[dict]) -> None:
    """Append rows; a torn last line can only follow a crash, and resume rewrites the file anyway."""
    with open(path, "a") as handle:
        handle.write("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


class StoredRun:
    """Access to the per-epoch and per-step logs of a run folder (``run_dir``)."""

    run_dir: Path

    @property
    def metrics(self) -> list[dict]:
        return read_jsonl(self.run_dir / "metrics.jsonl")

    @property
    def steps(self) -> list[dict]:
        return read_jsonl(self.run_dir / "steps.jsonl")


RUNNING_INDEX_INTERVAL_S = 5.0


class RunStore:
    """A runs folder: creates it, hands out run folders, and keeps the index (unless ``index=False``:
    then ``register`` does nothing, for a process on another machine whose caller registers its runs)."""

    def __init__(self, root: str | Path, index: bool = True):
        self.root = Path(root)
        self.index = index
        self._running_indexed: dict[str, float] = {}  # run id -> when its last "running" row was written
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-test-")
            probe.close()
            if index:
                with self._connect() as db:
                    db.execute(SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise RethinkgenError(f"runs folder {self.root} cannot be written: {error}") from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.root / INDEX_NAME, timeout=BUSY_TIMEOUT_S)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def register(self, run_id: str, config: dict, summary: dict) -> None:
        """Insert or update a run's row in the index. A running run's progress is indexed at most every
        RUNNING_INDEX_INTERVAL_S (its summary.json has every epoch): a sqlite transaction per epoch took
        14% of a tiny run's time."""
        if not self.index:
            return
        if summary.get("status") == "running":
            last = self._running_indexed.get(run_id)
            if last is not None and time.monotonic() - last < RUNNING_INDEX_INTERVAL_S:
                return
            self._running_indexed[run_id] = time.monotonic()
        with self._connect() as db:
            db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET "
                       "status=excluded.status, config=excluded.config, summary=excluded.summary, "
                       "updated=excluded.updated",
                       (run_id, summary.get("status", "unknown"), json.dumps(config), json.dumps(summary),
                        time.time()))
        db.close()

    def rows(self) -> list[dict]:
        with self._connect() as db:
            rows = db.execute("SELECT run_id, status, config, summary, updated FROM runs ORDER BY updated").fetchall()
        db.close()
        return [{"run_id": r[0], "status": r[1], "config": json.loads(r[2]), "summary": json.loads(r[3]),
                 "updated": r[4]} for r in rows]


def load(runs_dir: str | Path):
    """All runs in ``runs_dir`` as a pandas DataFrame: one row per run, config and summary as columns."""
    import pandas as pd

    runs_dir = Path(runs_dir)
    if not (runs_dir / INDEX_NAME).exists():
        raise RethinkgenError(f"{runs_dir} is not a runs folder (no {INDEX_NAME})")
    records = []
    for row in RunStore(runs_dir).rows():
        record = {"run_id": row["run_id"], "run_dir": str(runs_dir / row["run_id"])}
        record.update(row["config"])
        record.update({k: v for k, v in row["summary"].items() if k not in record})
        record["status"] = row["status"]
        records.append(record)
    return pd.DataFrame.from_records(records)
