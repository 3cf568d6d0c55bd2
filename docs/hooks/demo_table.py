"""MkDocs hook: the demo's table, taken at build time from README.md.

A page that holds the line ``<!-- demo-table -->`` gets, in its place, what README.md holds between
``<!-- demo-table:start -->`` and ``<!-- demo-table:end -->``: the table ``rethinkgen demo`` printed and
its provenance line, as written by ``python docs/update_demo_table.py``. One table, two places.
"""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- demo-table -->"
START, END = "<!-- demo-table:start -->", "<!-- demo-table:end -->"


def readme_demo_table() -> str:
    text = README.read_text(encoding="utf-8")
    if text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"README.md must hold {START} and {END} once each")
    return text.split(START)[1].split(END)[0].strip()


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, readme_demo_table())
