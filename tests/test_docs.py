"""The documentation: the README's demo table and links, and the pages generated from the code.

Fast: nothing is trained and MkDocs is not run (CI builds the site with ``mkdocs build --strict``)."""

import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest

from rethinkgen.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEMO_SETTINGS = ["true labels", "label noise 0.5", "random labels", "shuffled pixels", "random pixels", "gaussian"]


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def updater():
    return load_module(ROOT / "docs" / "update_demo_table.py")


SAMPLE_DEMO_OUTPUT = """# Randomization test: mlp-1x512 on digits: fit threshold 1, lr 0.01, batch 128

| setting | label noise | status |
|---|---|---|
| true labels | 0 | complete |
| random labels | 1 | complete |
"""


def test_marker_replacement_swaps_only_the_block_between_the_markers(updater):
    text = ("# Title\n\nBefore.\n\n<!-- demo-table:start -->\n| old | table |\n|---|---|\n| 1 | 2 |\n"
            "<!-- demo-table:end -->\n\nAfter.\n")
    block = updater.demo_block(SAMPLE_DEMO_OUTPUT, threads=2, torch_version="2.13.0+cpu", date="2026-01-02",
                               where="AMD EPYC, 2 CPUs")
    new = updater.replace_between_markers(text, block)
    assert new.startswith("# Title\n\nBefore.\n\n<!-- demo-table:start -->\n| setting | label noise | status |\n")
    assert new.endswith("<!-- demo-table:end -->\n\nAfter.\n")
    assert "| old | table |" not in new and "| random labels | 1 | complete |" in new
    assert "2 CPU threads" in new and "AMD EPYC, 2 CPUs" in new and "2026-01-02" in new
    assert "torch 2.13.0+cpu" in new and "mlp-1x512 on digits" in new
    # applying it again changes nothing: the markers stay, once each
    assert updater.replace_between_markers(new, block) == new


@pytest.mark.parametrize("text", [
    "no markers at all\n",
    "<!-- demo-table:start -->\nonly the start\n",
    "<!-- demo-table:end -->\n<!-- demo-table:start -->\nreversed\n",
    "<!-- demo-table:start -->\n<!-- demo-table:start -->\ntwice\n<!-- demo-table:end -->\n",
])
def test_marker_replacement_refuses_missing_doubled_or_reversed_markers(updater, text):
    with pytest.raises(ValueError):
        updater.replace_between_markers(text, "| a |\n|---|\n| 1 |")


def test_demo_output_without_a_table_is_refused(updater):
    with pytest.raises(ValueError, match="no table"):
        updater.table_lines("# Randomization test: nothing\n\nno rows\n")


def test_readme_demo_table_is_well_formed():
    text = README.read_text()
    assert text.count("<!-- demo-table:start -->") == 1 and text.count("<!-- demo-table:end -->") == 1
    block = text.split("<!-- demo-table:start -->")[1].split("<!-- demo-table:end -->")[0]
    rows = [line for line in block.strip().splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows]
    header, separator, body = cells[0], cells[1], cells[2:]
    assert header[0] == "setting" and "test acc" in header and "steps to fit" in header
    assert all(re.fullmatch(r"-{3,}", cell) for cell in separator) and len(separator) == len(header)
    assert all(len(row) == len(header) for row in body)
    assert [row[0] for row in body] == DEMO_SETTINGS
    status = header.index("status")
    assert all(row[status] == "complete" for row in body)
    for row in body:  # accuracies are numbers in [0, 1]
        for name in ("train acc", "test acc"):
            assert 0.0 <= float(row[header.index(name)]) <= 1.0
    # the line under the table says how it was made
    provenance = block.strip().splitlines()[-1]
    assert re.search(r"with \d+ CPU threads? on .+, torch \S+, \d{4}-\d{2}-\d{2}", provenance)
    assert "python docs/update_demo_table.py" in provenance


def test_readme_is_short_and_its_relative_links_resolve():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [t for t in targets if not re.match(r"[a-z]+://", t) and not t.startswith("#")]
    assert relative, "the README links to the documentation"
    for target in relative:
        assert (ROOT / target.split("#")[0]).exists(), target


def test_readme_holds_the_two_commands_that_ci_runs():
    text = README.read_text()
    demo = "python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e . && .venv/bin/rethinkgen demo"
    tests = ("python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e '.[test]' "
             "&& .venv/bin/python -m pytest -q")
    assert demo in text and tests in text
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_configuration_page_lists_every_setting_with_its_help():
    hook = load_module(ROOT / "docs" / "hooks" / "config_page.py")
    page = hook.on_page_markdown("before\n\n<!-- config-table -->\n\nafter\n", None, None, None)
    assert "<!-- config-table -->" not in page and page.startswith("before") and page.endswith("after\n")
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    names = [re.match(r"\| `(\w+)`", row).group(1) for row in rows]
    fields = dataclasses.fields(RunConfig)
    assert names == [f.name for f in fields]
    for row, f in zip(rows, fields):
        assert f"`--{f.name.replace('_', '-')}`" in row and f.metadata["help"] in row
        for choice in f.metadata.get("choices", ()):
            assert f"`{choice}`" in row
    assert "### Data" in page and "### GPU switches" in page


def test_command_line_page_shows_every_commands_help():
    hook = load_module(ROOT / "docs" / "hooks" / "cli_page.py")
    page = hook.cli_reference()
    for command in ("run", "demo", "sweep", "report", "measures", "theory memorize", "theory kernel", "list datasets",
                    "list models", "list presets", "list measures"):
        assert f"### `rethinkgen {command}`" in page
    assert "### `rethinkgen memorize`" not in page  # old names are accepted but not shown
    assert "--label-noise" in page and "--runs-per-gpu" in page


def test_presets_page_budgets_match_the_presets():
    from rethinkgen.experiments.presets import PRESETS

    EPOCHS = {name: preset.epochs for name, preset in PRESETS.items()}

    page = (ROOT / "docs" / "presets.md").read_text()
    lines = [line.strip() for line in page.splitlines() if line.strip().startswith("| ")]
    header = next(line for line in lines if line.startswith("| scale |"))
    columns = [cell.strip() for cell in header.strip("|").split("|")][1:]
    assert {preset for column in columns for preset in re.findall(r"`([\w-]+)`", column)} == set(EPOCHS)
    for scale in ("paper", "small", "tiny"):
        row = next(line for line in lines if line.startswith(f"| `{scale}` |") and line.count("|") == len(columns) + 2)
        budgets = [int(cell) for cell in row.strip("|").split("|")[1:]]
        for column, budget in zip(columns, budgets):
            for preset in re.findall(r"`([\w-]+)`", column):
                assert EPOCHS[preset][scale] == budget, (preset, scale)
