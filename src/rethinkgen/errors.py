"""What users see when something is wrong: one-line errors, and warnings that let the work go on."""

from __future__ import annotations

import sys


class RethinkgenError(Exception):
    """Bad input or an unusable environment; the CLI prints it on one line and exits non-zero."""


class DamagedFile(RethinkgenError):
    """A file of the run store (a summary, a checkpoint, a record) that cannot be read back."""


def choice_error(what: str, value, allowed) -> RethinkgenError:
    """An error naming the bad value and every allowed one."""
    return RethinkgenError(f"unknown {what} {value!r}; allowed: {', '.join(map(str, allowed))}")


_warned: set[str] = set()


def warn(message: str) -> None:
    """Print ``rethinkgen: warning: message`` on stderr, once per process for the same message."""
    if message not in _warned:
        _warned.add(message)
        print(f"rethinkgen: warning: {message}", file=sys.stderr)
