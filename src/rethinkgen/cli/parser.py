"""The command line's vocabulary: one flag per concept, ``choices`` for every enumeration, errors on one line.

Every command adds its shared flags through the helpers below (``add_runs``, ``add_subset``, ...), so a
concept has one spelling everywhere. The spellings of earlier versions stay accepted as hidden aliases
that print one warning line on stderr (once per process) and then do what the new spelling does.

This module imports nothing heavy: ``rethinkgen --help`` builds every parser without torch.
"""

from __future__ import annotations

import argparse
import re

from rethinkgen.errors import SHOWN_LENGTH, shown, warn

HIDDEN = argparse.SUPPRESS
MESSAGE_LENGTH = 400  # characters of an argparse error at most (an unrecognized argument may be huge)
LABELS_AS_NOISE = {"true": 0.0, "random": 1.0}  # earlier `--labels KIND`: the label noise it meant


class UsageError(Exception):
    """A command line the parser refuses; ``main`` prints it on one line and returns 2."""


def cut(text: str, length: int = SHOWN_LENGTH) -> str:
    """``text`` cut to ``length`` characters, ending in ``...`` when it was longer."""
    return text if len(text) <= length else text[:length - 3] + "..."


def _cut_quoted(message: str) -> str:
    """Every value in an argparse message (quoted, or a long word) cut to a readable length, and the message
    to MESSAGE_LENGTH characters."""
    message = re.sub(r"'[^'\n]{" + str(SHOWN_LENGTH) + ",}'", lambda m: cut(m.group(0), SHOWN_LENGTH - 1) + "'", message)
    message = re.sub(r"\S{" + str(SHOWN_LENGTH + 1) + ",}", lambda m: cut(m.group(0)), message)  # unquoted words
    return cut(message.replace("\n", " "), MESSAGE_LENGTH)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError (one line, no usage block) instead of exiting, and
    whose refused choices name the bad value, cut to a readable length, and the allowed values."""

    def error(self, message: str):
        """Raise UsageError with argparse's ``message`` (quoted values cut to a readable length)."""
        raise UsageError(_cut_quoted(message))

    def _check_value(self, action, value):
        if action.choices is None or value in action.choices:
            return
        allowed = action.choices
        if isinstance(action, argparse._SubParsersAction):  # the commands the help lists, not the old names
            allowed = [choice.dest for choice in action._choices_actions]
        raise argparse.ArgumentError(action, f"unknown value {shown(value)}; allowed: {', '.join(map(str, allowed))}")


def _renamed(base):
    """An argparse action class like ``base`` that warns once that its flag is an old spelling of ``new``."""

    class Renamed(base):
        def __init__(self, *args, new: str, **kwargs):
            super().__init__(*args, **kwargs)
            self.new = new

        def __call__(self, parser, namespace, values, option_string=None):
            warn(f"{option_string} is deprecated; use {self.new}")
            super().__call__(parser, namespace, values, option_string)

    return Renamed


RenamedStore = _renamed(argparse._StoreAction)
RenamedFlag = _renamed(argparse._StoreTrueAction)


def deprecated_command(args: argparse.Namespace) -> None:
    """Warn once when the command line used an old command name (``rethinkgen kernel``)."""
    old, new = getattr(args, "old_command", None), getattr(args, "new_command", None)
    if old:
        warn(f"`rethinkgen {old}` is deprecated; use `rethinkgen {new}`")


# ---------------------------------------------------------------------------------------- the vocabulary
def add_runs(parser: argparse.ArgumentParser, what: str = "runs folder", old: tuple[str, ...] = ("--out",)) -> None:
    """``--runs DIR`` (dest ``runs_dir``): the runs folder; ``old``: earlier spellings, hidden."""
    parser.add_argument("--runs", dest="runs_dir", default="runs", metavar="DIR", help=f"{what} (default: runs)")
    for flag in old:
        parser.add_argument(flag, dest="runs_dir", action=RenamedStore, new="--runs", help=HIDDEN)


def add_old_runs_positional(parser: argparse.ArgumentParser) -> None:
    """The runs folder as an optional positional argument, as earlier versions took it (hidden)."""
    parser.add_argument("runs_positional", nargs="?", default=None, help=HIDDEN)


def runs_folder(args: argparse.Namespace) -> str:
    """The runs folder: ``--runs``, or the old positional argument (with a warning)."""
    if getattr(args, "runs_positional", None) is None:
        return args.runs_dir
    warn("the RUNS_DIR argument is deprecated; use --runs RUNS_DIR")
    if args.runs_dir not in ("runs", args.runs_positional):
        raise UsageError(f"two runs folders given: {shown(args.runs_positional)} and --runs {shown(args.runs_dir)}")
    return args.runs_positional


def add_subset(parser: argparse.ArgumentParser, default: int | None = None, what: str = "training examples",
               old: tuple[str, ...] = ()) -> None:
    """``--subset N`` (dest ``subset``): how many training examples; ``old``: earlier spellings, hidden."""
    shown_default = "all" if default is None else default
    parser.add_argument("--subset", type=int, default=default, metavar="N",
                        help=f"number of {what} (default: {shown_default})")
    for flag in old:
        parser.add_argument(flag, dest="subset", type=int, action=RenamedStore, new="--subset", help=HIDDEN)


def add_test_subset(parser: argparse.ArgumentParser, old: tuple[str, ...] = ()) -> None:
    """``--test-subset N`` (dest ``test_subset``): how many test examples; ``old``: earlier spellings, hidden."""
    parser.add_argument("--test-subset", type=int, metavar="N", help="number of test examples (default: all)")
    for flag in old:
        parser.add_argument(flag, dest="test_subset", type=int, action=RenamedStore, new="--test-subset", help=HIDDEN)


def labels_as_noise(kind: str) -> float:
    """The label noise an earlier ``--labels KIND`` meant: true 0, random 1."""
    if kind not in LABELS_AS_NOISE:
        raise argparse.ArgumentTypeError(f"unknown labels {shown(kind)}; allowed: {', '.join(LABELS_AS_NOISE)}")
    return LABELS_AS_NOISE[kind]


def add_old_labels(parser: argparse.ArgumentParser, nargs: str | None = None) -> None:
    """The earlier ``--labels random|true``, hidden: stored as ``--label-noise 1|0``."""
    parser.add_argument("--labels", dest="label_noise", type=labels_as_noise, nargs=nargs, action=RenamedStore,
                        new="--label-noise (random labels: 1, true labels: 0)", help=HIDDEN)


def add_data(parser: argparse.ArgumentParser, default: str | None, choices=None, what: str = "data source") -> None:
    """``--dataset NAME`` and ``--data-dir DIR``."""
    default_text = f" (default: {default})" if default else ""
    parser.add_argument("--dataset", default=default, choices=choices, metavar="NAME" if choices is None else None,
                        help=what + default_text)
    parser.add_argument("--data-dir", metavar="DIR", help="directory holding the dataset's files")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """Add ``--quiet`` (no progress bar) to ``parser``.

    Args:
        parser: the command's parser.
    """
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
