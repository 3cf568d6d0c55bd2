"""What users see when something is wrong: one-line errors, and warnings that let the work go on."""

from __future__ import annotations

import reprlib
import sys
from collections.abc import Iterable

SHOWN_LENGTH = 80  # characters of a bad value an error message echoes at most

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 3, 5, 5, 5, 5
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = SHOWN_LENGTH


class RethinkgenError(Exception):
    """Bad input or an unusable environment; the CLI prints it on one line and exits non-zero."""


class DamagedFile(RethinkgenError):
    """A file of the run store (a summary, a checkpoint, a record) that cannot be read back."""


def shown(value: object) -> str:
    """``repr(value)`` cut to a readable length (at most SHOWN_LENGTH characters, on one line), for error
    messages that echo a value read from a file or the command line: a value of any size or depth (a YAML
    alias bomb expands to billions of items) costs only what is shown.

    Args:
        value: the value to show.
    """
    text = _REPR.repr(value).replace("\n", "\\n")
    return text if len(text) <= SHOWN_LENGTH else text[:SHOWN_LENGTH - 3] + "..."


def raised(error: BaseException) -> str:
    """What an exception from someone else's code (a user's model, an imported module) said, on one line:
    ``TypeName: the first line of its message``, cut to 200 characters.

    Args:
        error: the exception.
    """
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def choice_error(what: str, value: object, allowed: Iterable) -> RethinkgenError:
    """An error naming the bad value and every allowed one.

    Args:
        what: what the value is, e.g. "kernel".
        value: the bad value.
        allowed: every allowed value.
    """
    return RethinkgenError(f"unknown {what} {shown(value)}; allowed: {', '.join(map(str, allowed))}")


_warned: set[str] = set()


def warn(message: str) -> None:
    """Print ``rethinkgen: warning: message`` on stderr, once per process for the same message.

    Args:
        message: the warning, without the prefix.
    """
    if message not in _warned:
        _warned.add(message)
        print(f"rethinkgen: warning: {message}", file=sys.stderr)
