"""Regenerate the demo's table in README.md and its figure in docs/ from one real run of the demo.

    python docs/update_demo_table.py [--threads 2]

Runs ``rethinkgen demo --quiet`` (this checkout's code) in a fresh temporary runs folder with torch's CPU
thread count set to ``--threads`` (through ``OMP_NUM_THREADS``), then

- replaces what lies between ``<!-- demo-table:start -->`` and ``<!-- demo-table:end -->`` in README.md
  with the table the demo wrote (``demo-digits-mlp-1x512.md``) and a line saying the machine, the
  thread count, the torch version, the date and the command;
- copies the demo's figure to ``docs/demo-digits-mlp-1x512.png``.

Nothing in the table is edited by hand: it is exactly what the command printed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START = "<!-- demo-table:start -->"
END = "<!-- demo-table:end -->"
DEMO_NAME = "demo-digits-mlp-1x512"  # the name the demo gives its table and figure for its default data and model
COMMAND = "python docs/update_demo_table.py"


def replace_between_markers(text: str, block: str, start: str = START, end: str = END) -> str:
    """Return ``text`` with everything between the ``start`` and ``end`` marker lines replaced by ``block``.

    Each marker must occur exactly once, ``start`` before ``end``; the markers themselves are kept."""
    for marker in (start, end):
        if text.count(marker) != 1:
            raise ValueError(f"{marker!r} occurs {text.count(marker)} times in the text; it must occur once")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    if end in head:
        raise ValueError(f"{end!r} comes before {start!r}")
    return f"{head}{start}\n{block.strip()}\n{end}{tail}"


def table_lines(demo_markdown: str) -> tuple[str, list[str]]:
    """(title, table rows) of the Markdown file the demo writes: a ``# Randomization test: ...`` heading
    and a table."""
    lines = demo_markdown.splitlines()
    title = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("# ")), "")
    rows = [line for line in lines if line.startswith("|")]
    if len(rows) < 3:
        raise ValueError("the demo's Markdown holds no table")
    return title, rows


def machine() -> str:
    """The CPU's model name and the number of CPUs, e.g. 'AMD EPYC, 2 CPUs'."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {os.cpu_count()} CPUs"


def demo_block(demo_markdown: str, threads: int, torch_version: str, date: str, where: str) -> str:
    """The README block: the demo's table, then one line of provenance."""
    title, rows = table_lines(demo_markdown)
    return "\n".join(rows) + (
        f"\n\n<sub>{title}. Printed by `rethinkgen demo` with {threads} CPU thread{'s' if threads != 1 else ''} "
        f"on {where}, torch {torch_version}, {date}; regenerate with `{COMMAND}`.</sub>")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads of the demo (default: 2)")
    args = parser.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads(), torch.__version__)"],
                           env=env, capture_output=True, text=True, check=True)
    threads, torch_version = probe.stdout.split()
    with tempfile.TemporaryDirectory(prefix="rethinkgen-demo-") as runs:
        subprocess.run([sys.executable, "-m", "rethinkgen", "demo", "--runs", runs, "--quiet"], env=env, check=True)
        demo_markdown = (Path(runs) / f"{DEMO_NAME}.md").read_text()
        shutil.copyfile(Path(runs) / f"{DEMO_NAME}.png", ROOT / "docs" / f"{DEMO_NAME}.png")
    date = datetime.date.today().isoformat()
    block = demo_block(demo_markdown, int(threads), torch_version, date, machine())
    README.write_text(replace_between_markers(README.read_text(), block))
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
