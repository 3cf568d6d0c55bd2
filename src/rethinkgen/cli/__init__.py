"""The ``rethinkgen`` command line (parsing and printing only; the work is done by the library).

    rethinkgen run | demo | sweep | report | measures
    rethinkgen theory memorize | kernel | minnorm | rademacher | stability
    rethinkgen list models | datasets | presets | measures

Building the parser imports no torch: ``rethinkgen --help`` answers at once, and each command imports
what it needs when it runs.
"""

from __future__ import annotations

import os
import sys

from rethinkgen import __version__
from rethinkgen.cli import lists, theory, train
from rethinkgen.cli.parser import Parser, UsageError, deprecated_command
from rethinkgen.errors import RethinkgenError


def build_parser() -> Parser:
    """The parser of every command; old command names and flags are accepted but not listed."""
    parser = Parser(prog="rethinkgen",
                    description="Randomization tests of Zhang et al., 'Understanding deep learning requires "
                                "rethinking generalization' (ICLR 2017).")
    parser.add_argument("--version", action="version", version=f"rethinkgen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train.add_commands(commands)
    theory.add_commands(commands)
    lists.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default: the process's arguments); return the exit status: 0 done, 1 some
    work failed (said on stderr), 2 bad input (one line ``rethinkgen: error: ...``), 130 interrupted, 141
    output cut short by a closed pipe."""
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as done:  # --help and --version print and stop here
            return done.code
        deprecated_command(args)
        status = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled below, not at the interpreter's exit
        return status
    except (UsageError, RethinkgenError) as error:
        print(f"rethinkgen: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rethinkgen: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (``rethinkgen list models | head``): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the interpreter's final flush goes nowhere
        return 141  # 128 + SIGPIPE, as a shell reports a command a pipe cut short


if __name__ == "__main__":
    sys.exit(main())
