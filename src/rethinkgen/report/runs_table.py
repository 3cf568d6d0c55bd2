"""The runs table as a file: ``rethinkgen results RUNS_DIR --format table|csv|json|parquet``.

One row per run, its config settings and summary metrics as columns: the table ``store.load`` returns,
filtered by ``--where KEY=VALUE`` and cut to ``--columns``. Parquet needs pyarrow.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from rethinkgen import store
from rethinkgen.choices import RESULT_FORMATS
from rethinkgen.errors import RethinkgenError, choice_error, shown

PARQUET_MISSING = "the parquet format needs pyarrow: pip install pyarrow"


def runs_table(runs_dir: str | Path, where: Sequence[str] = (), columns: Sequence[str] | None = None):
    """The runs of ``runs_dir`` as a pandas DataFrame, one row per run (``store.load``), filtered and cut.

    Args:
        runs_dir: the runs folder.
        where: filters ``KEY=VALUE``; a run is kept when every one matches (its column ``KEY`` equals
            ``VALUE``: numbers compare as numbers, ``true``/``false`` as booleans, anything else as text).
        columns: the columns to keep, in this order (default: all).
    """
    frame = store.load(runs_dir)
    if frame.empty:
        raise RethinkgenError(f"no runs in {runs_dir}")
    for condition in where:
        key, value = _condition(condition, frame.columns)
        frame = frame[[_matches(cell, value) for cell in frame[key]]]
    if columns:
        for name in columns:
            if name not in frame.columns:
                raise choice_error("column", name, frame.columns)
        frame = frame[list(columns)]
    return frame.reset_index(drop=True)


def parse_columns(text: str | None) -> list[str] | None:
    """``a,b`` as ``["a", "b"]``; None for None."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise RethinkgenError(f"columns {shown(text)} names no column; give them as a,b,c")
    return names


def render(frame, fmt: str) -> str | bytes:
    """The table in format ``fmt`` (one of choices.RESULT_FORMATS): text, or bytes for parquet.

    Args:
        frame: the table (``runs_table``).
        fmt: table (aligned text), csv, json (a list of objects, one per run) or parquet.
    """
    if fmt not in RESULT_FORMATS:
        raise choice_error("format", fmt, RESULT_FORMATS)
    if fmt == "table":
        return (frame.to_string(index=False) if len(frame) else "(no runs match)") + "\n"
    if fmt == "json":
        return json.dumps([{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")],
                          indent=1, allow_nan=False) + "\n"
    flat = frame.copy()
    for name in flat.columns:
        if flat[name].dtype == object:
            flat[name] = [_cell(value) for value in flat[name]]
    if fmt == "csv":
        return flat.to_csv(index=False)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise RethinkgenError(PARQUET_MISSING) from None
    buffer = io.BytesIO()
    flat.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def write(frame, fmt: str, output: str | Path | None) -> str | None:
    """Write the table in format ``fmt`` to ``output`` (None: return it as text, for stdout; parquet
    needs a file). Returns the text when there is no ``output``."""
    if fmt == "parquet" and output is None:
        raise RethinkgenError("parquet is a binary format: give --output FILE")
    rendered = render(frame, fmt)
    if output is None:
        return rendered
    data = rendered if isinstance(rendered, bytes) else rendered.encode()
    store.atomic_write(Path(output), lambda handle: handle.write(data))
    return None


def _condition(text: str, columns) -> tuple[str, str]:
    key, sep, value = str(text).partition("=")
    key = key.strip()
    if not sep or not key:
        raise RethinkgenError(f"--where {shown(text)} must be KEY=VALUE, e.g. status=complete")
    if key not in columns:
        raise choice_error("column", key, columns)
    return key, value.strip()


def _matches(cell, value: str) -> bool:
    """Whether a table cell equals the ``--where`` value as given on the command line."""
    cell = _plain(cell)
    if isinstance(cell, bool) or value.lower() in ("true", "false"):
        return str(cell).lower() == value.lower()
    if isinstance(cell, (int, float)):
        try:
            return math.isclose(float(cell), float(value), rel_tol=1e-12, abs_tol=0.0)
        except ValueError:
            return False
    if cell is None:
        return value.lower() in ("", "none", "null")
    return (cell if isinstance(cell, str) else json.dumps(cell)) == value


def _plain(value):
    """A cell as a plain JSON value: numpy scalars as Python numbers, NaN as None, tuples as lists."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple):
        return list(value)
    return value


def _cell(value):
    """A cell of an object column for csv and parquet: text as it is, anything else as JSON (None stays)."""
    value = _plain(value)
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, allow_nan=False) if isinstance(value, (list, dict)) else json.dumps(value)
