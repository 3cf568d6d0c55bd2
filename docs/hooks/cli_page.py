"""MkDocs hook: the ``--help`` of every ``rethinkgen`` command, generated at build time from the parser.

A page that holds the line ``<!-- cli-help -->`` gets, in its place, one section per command with the
text ``rethinkgen COMMAND --help`` prints (at a fixed width of 100 columns), so the reference always
shows the flags the installed command line accepts.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
MARKER = "<!-- cli-help -->"
WIDTH = "100"


def _commands(parser: argparse.ArgumentParser, prefix: str = ""):
    """(name, parser) of every command the help lists, groups (``theory``, ``list``) followed by their commands;
    the old names, accepted but not listed, are left out."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for listed in action._choices_actions:
                command = action.choices[listed.dest]
                yield prefix + listed.dest, command
                yield from _commands(command, prefix + listed.dest + " ")


def cli_reference() -> str:
    """Markdown: the top-level help, then each command's help in a code block."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    from rethinkgen.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps its help to the terminal's width
    try:
        parser = build_parser()
        parts = ["```text", parser.format_help().rstrip(), "```", ""]
        for name, command in _commands(parser):
            parts += [f"### `rethinkgen {name}`", "", "```text", command.format_help().rstrip(), "```", ""]
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())
