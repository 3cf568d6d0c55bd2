"""The run store: one folder per run (named by its config hash) and one SQLite index for all of them.

A run folder holds ``config.json``, ``randomization.json``/``.npz``, ``metrics.jsonl`` (one row per
epoch), ``steps.jsonl`` (running mean training loss), ``summary.json``, ``initial.pt`` and
``checkpoint.pt``, and ``measures.json`` (the complexity measures of a completed run). Every file is
written by :func:`atomic_write`: under a temporary name, then renamed, so a crash or a full disk never
leaves a half-written file, and readable by the group as the umask allows. ``index.sqlite`` (WAL mode)
lists every run with its config and summary; the run folders are the truth, and a corrupt index is
rebuilt from them.

Everything here may have been written by someone else (runs folders are copied and shared): names and
run ids read from files are checked (:func:`safe_name`, :func:`check_run_id`) before they become paths,
checkpoints load with ``torch.load(weights_only=True)``, and a damaged file is named in one line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from rethinkgen.errors import DamagedFile, RethinkgenError, shown, warn

INDEX_NAME = "index.sqlite"
SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, status TEXT NOT NULL, config TEXT NOT NULL, summary TEXT NOT NULL,
    updated REAL NOT NULL)"""
BUSY_TIMEOUT_S = 60  # concurrent writers wait this long for the lock
RUN_ID = re.compile(r"[0-9a-f]{12}")  # the first 12 hex digits of the config's sha256 (RunConfig.run_id)
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=,@-]*")
MAX_NAME = 120
TEMPORARY_SUFFIX = ".tmp"
LOCK_NAME = "lock"
FINISHED = ("complete", "diverged")  # the statuses of a finished run: a re-run leaves it alone


# ------------------------------------------------------------------------------------------- names
def safe_name(name: object, what: str = "name") -> str:
    """``name`` if it can be one file name: letters, digits and ``_ . + = , @ -``, not starting with a dot
    or a dash, no ``..``, at most MAX_NAME characters; else one error naming it and what is allowed.

    Args:
        name: the proposed name (e.g. a sweep's, read from a file).
        what: what the name names, for the error message.
    """
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name or len(name) > MAX_NAME:
        raise RethinkgenError(f"{what} {shown(name)} is not allowed: use at most {MAX_NAME} letters, digits and "
                              f"'_.+=,@-', starting with a letter, digit or '_', without '..'")
    return name


def check_run_id(run_id: object, where: str = "") -> str:
    """``run_id`` if it has the form of a run id (12 lowercase hex digits); else one error.

    Args:
        run_id: the proposed run id (e.g. read from a file).
        where: a prefix for the error message that says where it came from.
    """
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise RethinkgenError(f"{where}run id {shown(run_id)} is not a run id (12 hexadecimal digits)")
    return run_id


def run_path(root: str | Path, run_id: str) -> Path:
    """The folder of run ``run_id`` in the runs folder ``root`` (the id checked first).

    Args:
        root: the runs folder.
        run_id: the run's id.
    """
    return Path(root) / check_run_id(run_id)


# ------------------------------------------------------------------------------------------- writing
@functools.cache
def file_mode() -> int:
    """The permissions of a new file under this process's umask (0o644 under the usual 022)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return ""


def _free_space(path: Path) -> str:
    try:
        return _size(shutil.disk_usage(path).free)
    except OSError:
        return "unknown space"


def first_sentence(error: BaseException) -> str:
    """The first sentence of an exception's message, for a one-line error."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text.split(". ")[0][:160]


def write_error(path: Path, error: BaseException) -> RethinkgenError:
    """One line for a failed write of ``path``: the disk full, or the system's reason."""
    cause = error
    while cause is not None and not isinstance(cause, OSError):  # torch.save wraps the OSError of a write
        cause = cause.__context__
    if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
        return RethinkgenError(f"the disk is full: cannot write {path} ({_free_space(path.parent)} free there); "
                               f"free some space and run the same command again (what was written before is intact)")
    if isinstance(cause, OSError):
        return RethinkgenError(f"cannot write {path}: {cause.strerror or cause}")
    reason = (str(error).strip().splitlines() or [type(error).__name__])[-1][:200]
    return RethinkgenError(f"cannot write {path} ({reason}); {_free_space(path.parent)} free there: if the disk "
                           f"is full, free some space and run the same command again (what was written before is intact)")


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(handle)`` (a binary file) under a temporary name in the same folder,
    then rename it over ``path``: ``path`` is either its old self or complete. The file is readable as
    the umask allows (not 0600 as a temporary file would be). A failed write (a full disk: OSError, or
    the RuntimeError torch.save turns it into) removes the temporary file and raises one clear error.

    Args:
        path: the file to write.
        write: writes the content to the binary handle it is given.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=TEMPORARY_SUFFIX)
    except OSError as error:
        raise write_error(path, error) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), file_mode())
            write(handle)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:
        raise write_error(path, error) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see ``atomic_write``).

    Args:
        path: the file.
        text: its new content.
    """
    atomic_write(path, lambda handle: handle.write(text.encode()))


def write_json(path: Path, value: object) -> None:
    """Write ``value`` to ``path`` as indented JSON with sorted keys, atomically.

    Args:
        path: the file.
        value: anything ``json.dumps`` takes.
    """
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` to ``path``, one JSON object a line, atomically.

    Args:
        path: the file.
        rows: the rows.
    """
    atomic_write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def append_jsonl(path: Path, rows: list[dict]) -> None:
    """Append rows; a torn last line can only follow a crash, and resume rewrites the file anyway.
    A symbolic link is not followed (the log is always a file of its own).

    Args:
        path: the log.
        rows: the rows to append, one JSON object a line.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "a") as handle:
            handle.write("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
    except OSError as error:
        raise write_error(path, error) from None


# ------------------------------------------------------------------------------------------- reading
def read_json(path: str | Path) -> dict:
    """A JSON object from ``path``; a missing, unreadable or garbled file is one DamagedFile error.

    Args:
        path: the file.
    """
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except OSError as error:
        raise DamagedFile(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise DamagedFile(f"{path} is damaged: not valid JSON ({str(error)[:120]})") from None
    if not isinstance(value, dict):
        raise DamagedFile(f"{path} is damaged: it holds a JSON {type(value).__name__}, not an object")
    return value


def read_summary(run_dir: Path) -> dict | None:
    """A run's summary.json, or None if it has none yet; DamagedFile if it cannot be read.

    Args:
        run_dir: the run's folder.
    """
    path = Path(run_dir) / "summary.json"
    return read_json(path) if path.exists() else None


def is_finished(status: str | None) -> bool:
    """Whether a run with this status has finished (complete or diverged) and is never trained again.

    Args:
        status: the ``status`` of the run's summary.json, or None for a run without one.
    """
    return status in FINISHED


def finished_summary(run_dir: Path, restart: bool = False) -> dict | None:
    """The summary of a run that finished (complete or diverged), else None.

    Args:
        run_dir: the run's folder.
        restart: if true, a summary.json that cannot be read counts as no summary (the run is then trained
            again from the start); if false, it raises DamagedFile.
    """
    try:
        summary = read_summary(run_dir)
    except DamagedFile:
        if restart:
            return None
        raise
    return summary if summary is not None and is_finished(summary.get("status")) else None


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a log; a line that cannot be read (torn by a killed writer) is skipped with a warning.

    Args:
        path: the log (a missing file has no rows).
    """
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text().splitlines() if path.exists() else [], 1):
        try:
            row = json.loads(line) if line.strip() else None
        except ValueError:
            row = None
            warn(f"{path}: line {number} is damaged; skipped")
        if isinstance(row, dict):
            rows.append(row)
    return rows


class StoredRun:
    """Access to the per-epoch and per-step logs of a run folder (``run_dir``)."""

    run_dir: Path

    @property
    def metrics(self) -> list[dict]:
        """The run's per-epoch rows (metrics.jsonl)."""
        return read_jsonl(self.run_dir / "metrics.jsonl")

    @property
    def steps(self) -> list[dict]:
        """The run's running mean training loss (steps.jsonl)."""
        return read_jsonl(self.run_dir / "steps.jsonl")


# ------------------------------------------------------------------------------------------- locks
class RunBusy(RethinkgenError):
    """Another process is training this run right now."""


@contextlib.contextmanager
def run_lock(run_dir: Path, run_id: str):
    """An exclusive lock on the run folder for as long as this process trains or measures it (released on
    exit, even by a killed process). Once it is held, temporary files that a killed writer left are removed.

    Args:
        run_dir: the run's folder (the lock file is created in it).
        run_id: the run's id, for the message when another process holds the lock.
    """
    path = Path(run_dir) / LOCK_NAME
    try:  # never truncates, never follows a link out of the folder
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except IsADirectoryError:
        raise RethinkgenError(f"the lock file {path} is a directory; remove it and run again") from None
    except OSError as error:
        raise RethinkgenError(f"cannot open the lock file {path}: {error.strerror or error}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(f"run {run_id} is being trained by another process") from None
        remove_stale_temporaries(Path(run_dir))
        yield
    finally:
        os.close(fd)


def remove_stale_temporaries(run_dir: Path) -> None:
    """Remove the ``*.tmp`` files of writes that never finished (call with the run's lock held)."""
    for path in run_dir.glob("*" + TEMPORARY_SUFFIX):
        if path.is_file() or path.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


# ------------------------------------------------------------------------------------------- the index
RUNNING_INDEX_INTERVAL_S = 5.0
INSERT = ("INSERT INTO runs VALUES (?, ?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET status=excluded.status, "
          "config=excluded.config, summary=excluded.summary, updated=excluded.updated")
SELECT = "SELECT run_id, status, config, summary, updated FROM runs ORDER BY updated"


def _is_corrupt(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or any(
        text in str(error) for text in ("file is not a database", "malformed"))


def scan_runs(root: str | Path) -> list[dict]:
    """Index rows rebuilt from the run folders (their config.json and summary.json), oldest first. A folder
    whose files cannot be read is named in a warning and left out.

    Args:
        root: the runs folder.
    """
    rows = []
    for run_dir in sorted(Path(root).iterdir()):
        if not (RUN_ID.fullmatch(run_dir.name) and run_dir.is_dir() and (run_dir / "summary.json").exists()):
            continue
        try:
            config, summary = read_json(run_dir / "config.json"), read_summary(run_dir)
        except DamagedFile as damaged:
            warn(f"{damaged}; run {run_dir.name} is left out of the index")
            continue
        rows.append({"run_id": run_dir.name, "status": str(summary.get("status", "unknown")), "config": config,
                     "summary": summary, "updated": (run_dir / "summary.json").stat().st_mtime})
    return sorted(rows, key=lambda row: row["updated"])


def _query_index(path: Path, query: str = SELECT) -> list[tuple]:
    """Run ``query`` on the index read-only. With no writer at work (no -wal file) the file is opened as
    immutable, which writes nothing beside it (a read-only or shared runs folder stays untouched); if that
    read fails (a writer started meanwhile), or while a writer works, SQLite's read-only mode is used."""
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve()))
    modes = ["mode=ro", "immutable=1"] if Path(f"{path}-wal").exists() else ["immutable=1", "mode=ro"]
    for mode in modes:
        try:
            db = sqlite3.connect(f"{uri}?{mode}", uri=True, timeout=BUSY_TIMEOUT_S)
            try:
                return db.execute(query).fetchall()
            finally:
                db.close()
        except sqlite3.Error:
            if mode == modes[-1]:
                raise
    return []


def index_rows(root: str | Path) -> list[dict]:
    """Every run in the index of the runs folder ``root``, oldest first, read without writing anything.
    Rows whose run id or JSON is malformed are skipped with a warning; an index that cannot be read at
    all is replaced by the run folders themselves (with a warning).

    Args:
        root: the runs folder.
    """
    path = Path(root) / INDEX_NAME
    try:
        raw = _query_index(path)
    except sqlite3.Error as error:
        warn(f"the index {path} cannot be read ({error}); listing the runs from their folders instead")
        return scan_runs(root)
    rows = []
    for run_id, status, config, summary, updated in raw:
        try:
            row = {"run_id": check_run_id(run_id), "status": str(status), "config": json.loads(config),
                   "summary": json.loads(summary), "updated": updated}
            if not isinstance(row["config"], dict) or not isinstance(row["summary"], dict):
                raise TypeError("its config or summary is not a JSON object")
        except (RethinkgenError, ValueError, TypeError) as error:
            warn(f"{path}: skipped a malformed row ({error})")
            continue
        rows.append(row)
    return rows


class RunStore:
    """A runs folder: creates it, hands out run folders, and keeps the index (unless ``index=False``:
    then ``register`` does nothing, for a process on another machine whose caller registers its runs)."""

    def __init__(self, root: str | Path, index: bool = True):
        self.root = Path(root)
        self.index = index
        self._running_indexed: dict[str, float] = {}  # run id -> when its last "running" row was written
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):  # nameless where the system allows: nothing left behind
                pass
        except OSError as error:
            raise RethinkgenError(f"runs folder {self.root} cannot be written: {error.strerror or error}") from None
        if index:
            self._write_index(lambda db: db.execute(SCHEMA))

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.root / INDEX_NAME, timeout=BUSY_TIMEOUT_S)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def _write_index(self, change: Callable[[sqlite3.Connection], object]) -> None:
        """Apply ``change(db)`` in one transaction; a corrupt index is first rebuilt from the run folders."""
        for attempt in range(2):
            try:
                db = self._connect()
                try:
                    with db:
                        change(db)
                finally:
                    db.close()
                return
            except sqlite3.Error as error:
                if attempt == 0 and _is_corrupt(error):
                    self._rebuild_index(error)
                    continue
                raise RethinkgenError(f"the index {self.root / INDEX_NAME} of runs folder {self.root} cannot be "
                                      f"written: {error}") from None

    def _index_is_sound(self) -> bool:
        try:
            db = self._connect()
            try:
                return db.execute("PRAGMA quick_check").fetchall() == [("ok",)]
            finally:
                db.close()
        except sqlite3.Error:
            return False

    def _rebuild_index(self, error: sqlite3.Error) -> None:
        """Move a corrupt index aside (``index.sqlite.corrupt``) and build a new one from the run folders,
        which hold every run's config and summary. One process rebuilds; the others wait and find it done."""
        path = self.root / INDEX_NAME
        aside = self.root / (INDEX_NAME + ".corrupt")
        folder = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            if self._index_is_sound():
                return
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{path}{suffix}").exists():
                    os.replace(f"{path}{suffix}", f"{aside}{suffix}")
            rows = scan_runs(self.root)
            db = self._connect()
            try:
                with db:
                    db.execute(SCHEMA)
                    db.executemany(INSERT, [(r["run_id"], r["status"], json.dumps(r["config"]), json.dumps(r["summary"]),
                                             r["updated"]) for r in rows])
            finally:
                db.close()
            warn(f"the index {path} was corrupt ({error}); moved it to {aside} and rebuilt it from the "
                 f"{len(rows)} run folder(s)")
        except (OSError, sqlite3.Error) as failure:
            raise RethinkgenError(f"the index {path} is corrupt ({error}) and could not be rebuilt: {failure}") from None
        finally:
            os.close(folder)

    def run_dir(self, run_id: str) -> Path:
        """The folder of run ``run_id`` (the id checked first).

        Args:
            run_id: a run id (12 hexadecimal digits).
        """
        return run_path(self.root, run_id)

    def manifest_path(self, name: str) -> Path:
        """Where the manifest of sweep ``name`` is kept: ``sweeps/NAME.json`` (the name checked first).

        Args:
            name: the sweep's name.
        """
        return self.root / "sweeps" / f"{safe_name(name, 'sweep name')}.json"

    def register(self, run_id: str, config: dict, summary: dict) -> None:
        """Insert or update a run's row in the index. A running run's progress is indexed at most every
        RUNNING_INDEX_INTERVAL_S (its summary.json has every epoch; see docs/benchmarks.md).

        Args:
            run_id: the run's id.
            config: its settings (``RunConfig.to_dict()``).
            summary: its summary; its ``status`` is the row's.
        """
        if not self.index:
            return
        check_run_id(run_id)
        if summary.get("status") == "running":
            last = self._running_indexed.get(run_id)
            if last is not None and time.monotonic() - last < RUNNING_INDEX_INTERVAL_S:
                return
            self._running_indexed[run_id] = time.monotonic()
        row = (run_id, summary.get("status", "unknown"), json.dumps(config), json.dumps(summary), time.time())
        self._write_index(lambda db: db.execute(INSERT, row))

    def rows(self) -> list[dict]:
        """The index's rows, oldest first (rebuilt from the run folders if the index is damaged)."""
        return index_rows(self.root)


def load(runs_dir: str | Path):
    """All runs in ``runs_dir`` as a pandas DataFrame: one row per run, config and summary as columns.

    Args:
        runs_dir: the runs folder.
    """
    import pandas as pd  # optional: pandas is not among rethinkgen's dependencies

    runs_dir = Path(runs_dir)
    if not (runs_dir / INDEX_NAME).exists():
        raise RethinkgenError(f"{runs_dir} is not a runs folder (no {INDEX_NAME})")
    records = []
    for row in index_rows(runs_dir):
        record = {"run_id": row["run_id"], "run_dir": str(runs_dir / row["run_id"])}
        record.update(row["config"])
        record.update({k: v for k, v in row["summary"].items() if k not in record})
        record["status"] = row["status"]
        records.append(record)
    return pd.DataFrame.from_records(records)
