"""Checkpoints: a run's tensors saved atomically, and loaded back refusing anything but tensors and plain
values."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from rethinkgen.errors import DamagedFile
from rethinkgen.store import atomic_write, first_sentence


def save_state(path: Path, state: dict) -> None:
    """Save a checkpoint (tensors in plain dicts, lists and numbers) atomically with ``torch.save``.

    Args:
        path: the file.
        state: the checkpoint.
    """
    atomic_write(path, lambda handle: torch.save(state, handle))


def load_state(path: Path) -> dict:
    """A checkpoint written by :func:`save_state`, on the CPU. Only tensors and plain containers are
    read (``weights_only=True``): a file that asks for anything else is refused without running it.

    Args:
        path: the file.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL (\S+)", str(error))  # torch's wording varies; the global follows GLOBAL
        what = f"it asks for {refused.group(1)[:80]}" if refused else first_sentence(error)
        raise DamagedFile(f"{path} is not a rethinkgen checkpoint: it holds more than tensors and plain values "
                          f"({what}); refused to load it") from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        raise DamagedFile(f"{path} is damaged (truncated or not a checkpoint: {first_sentence(error)})") from None
    if not isinstance(state, dict):
        raise DamagedFile(f"{path} is damaged: it holds a {type(state).__name__}, not a checkpoint's dict")
    return state
