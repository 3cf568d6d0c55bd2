"""Checks of numeric settings: each bad value becomes one line that names it and what is allowed.

Every layer checks its numbers through these two functions, so a bad value reads the same whether it
came from a settings file, the command line or Python: ``epochs 0 must be an integer >= 1``,
``label_noise 1.5 is outside [0, 1]``.
"""

from __future__ import annotations

import math
import numbers

from rethinkgen.errors import RethinkgenError, shown


def is_integer(value) -> bool:
    """True if ``value`` is a whole number (an int or a numpy integer, not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` as an int if it is a whole number (not a bool) in ``low..high``; a one-line error otherwise.

    Args:
        name: what the value is called in the error (a setting's name, or a flag such as ``--subset``).
        value: the value to check (an int or a numpy integer).
        low: the smallest allowed value.
        high: the largest allowed value (None: no limit).
    """
    if is_integer(value) and low <= value and (high is None or value <= high):
        return int(value)
    allowed = f"in {low}..{high}" if high is not None else f">= {low}"
    raise RethinkgenError(f"{name} {shown(value)} must be an integer {allowed}")


def number(name: str, value, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
           high_open: bool = False) -> float:
    """``value`` as a float if it is a finite real number (not a bool) within the interval; a one-line
    error otherwise.

    Args:
        name: what the value is called in the error.
        value: the value to check.
        low, high: the interval's ends (an infinite end: no limit on that side).
        low_open, high_open: True if that end itself is not allowed (``(0, 1]`` is ``low_open=True``).
    """
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if real and math.isfinite(value) and (value > low if low_open else value >= low) \
            and (value < high if high_open else value <= high):
        return float(value)
    if high == math.inf:
        allowed = f"must be a number {'>' if low_open else '>='} {low:g}"
    elif low == -math.inf:
        allowed = f"must be a number {'<' if high_open else '<='} {high:g}"
    else:
        allowed = f"is outside {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    raise RethinkgenError(f"{name} {shown(value)} {allowed}")
