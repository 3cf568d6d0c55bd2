"""MkDocs hook: the table of every run setting, generated at build time from ``RunConfig`` itself.

A page that holds the line ``<!-- config-table -->`` gets, in its place, one table per group of settings
(the groups are the comment lines of the ``RunConfig`` class body) with each field's key, flag, type,
default, whether it is part of the run id, and its help text (``metadata['help']``) followed by its
allowed values (``metadata['choices']``) where the field declares them. Nothing is written by hand, so the page cannot drift from the code.

Importing ``rethinkgen.config`` imports torch (through the model registry), so building the docs needs
the package's dependencies installed, as the ``docs`` extra does.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
MARKER = "<!-- config-table -->"


def _import_config():
    """The checkout's own ``rethinkgen.config`` (its ``src`` first on the path)."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    from rethinkgen import config

    return config


def field_groups(cls) -> dict[str, str]:
    """{field name: group}, the group being the last ``# comment`` line above the field in the class body."""
    groups, group = {}, ""
    for line in inspect.getsource(cls).splitlines():
        comment = re.match(r"^    # ([^-].*)$", line)
        if comment:
            group = comment.group(1).split("(")[0].strip()
        field = re.match(r"^    (\w+): ", line)
        if field:
            groups[field.group(1)] = group
    return groups


def _type_name(annotation) -> str:
    optional = typing.get_origin(annotation) is typing.Union
    base = typing.get_args(annotation)[0] if optional else annotation
    name = {list: "list of names"}.get(base, getattr(base, "__name__", str(base)))
    return f"{name} or unset" if optional else name


def _default(value) -> str:
    if value is None:
        return "unset"
    if value == ():
        return "none"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def config_table() -> str:
    """Markdown: one table per group of ``RunConfig`` fields."""
    config = _import_config()
    cls = config.RunConfig
    hints = typing.get_type_hints(cls)
    groups = field_groups(cls)
    sections: dict[str, list[str]] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if f.name in config.NOT_HASHED:
            in_id = "no"
        elif not meta.get("hashed_at_default", True):
            neutral = meta.get("neutral", f.default)
            in_id = "when set" if neutral is None else "when not " + _default(neutral)
        else:
            in_id = "yes"
        allowed = (" Allowed: " + ", ".join(f"`{c}`" for c in meta["choices"]) + ".") if "choices" in meta else ""
        row = (f"| `{f.name}`<br>`--{f.name.replace('_', '-')}` | {_type_name(hints[f.name])} | {_default(f.default)} "
               f"| {in_id} | {_cell(meta['help'])}.{allowed} |")
        sections.setdefault(groups.get(f.name, "other"), []).append(row)
    parts = []
    for group, rows in sections.items():
        parts += [f"### {group[:1].upper()}{group[1:]}", "",
                  "| key and flag | type | default | in the run id | what it means |",
                  "|---|---|---|---|---|", *rows, ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, config_table())
