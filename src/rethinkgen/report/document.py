"""The report of a runs folder: ``write_report(runs_dir)`` writes ``report.html`` (self-contained, figures
embedded), ``report.md`` and every figure as PNG and SVG, drawn from the run store only.

Each sweep made from a preset gets its preset's section (``rethinkgen.experiments.presets``), with the
paper's values beside the measured ones when the data is the paper's; a sweep of a user's gets a plain
table. Several seeds are shown as mean and standard deviation; runs that are pending, running,
interrupted, diverged or failed are listed as such. Runs with complexity measures get a section testing
each measure against the generalization gap; stored theory results (``runs/theory``) get theirs.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Callable

from rethinkgen import measures
from rethinkgen.errors import RethinkgenError, warn
from rethinkgen.experiments.presets import PRESETS
from rethinkgen.measures import analysis, runs as stored
from rethinkgen.outcome import DID_NOT_FIT, status_words
from rethinkgen.report import Section, load_run, section_sweep
from rethinkgen.report.figures import PLAIN_TEXT, plt, save
from rethinkgen.store import INDEX_NAME, atomic_write_text, check_run_id, index_rows, read_json, safe_name

OLDER_PRESET_NAMES = {"demo": "figure1a"}  # manifests that name the demo, which runs Figure 1a's preset


SCATTER_COLUMNS = 4
MARKERS = "os^Dv<>p"


def section_measures(runs_dir: Path, out: Path) -> Section | None:
    """Every stored complexity measure against the gap: a table by granulated tau and one scatter plot each."""
    records = [r for r in stored.load_records(runs_dir) if r["measures"] and r["gap"] is not None]
    if len(records) < 2:
        return None
    present = {name for r in records for name in r["measures"]}
    names = [n for n in measures.measure_names() if n in present] + sorted(present - set(measures.measure_names()))
    kinds = {n: measures.get_measure(n).kind if n in measures.measure_names() else "" for n in names}
    axes, rows = analysis.analyse(records, names, kinds)
    rows_count = math.ceil(len(rows) / SCATTER_COLUMNS)
    fig, grid = plt.subplots(rows_count, SCATTER_COLUMNS, figsize=(3.4 * SCATTER_COLUMNS, 2.8 * rows_count),
                             squeeze=False, layout="constrained")
    points = None
    model_names = sorted({r["config"].get("model", "?") for r in records})
    for ax, row in zip(grid.flat, rows):
        x = [r["measures"][row.measure] for r in records if row.measure in r["measures"]]
        for i, model in enumerate(model_names):  # colour: label noise; marker: model
            used = [r for r in records if row.measure in r["measures"] and r["config"].get("model", "?") == model]
            points = ax.scatter([r["measures"][row.measure] for r in used], [r["gap"] for r in used],
                                c=[r["label_noise"] or 0.0 for r in used], cmap="viridis", vmin=0, vmax=1, s=18,
                                marker=MARKERS[i % len(MARKERS)], edgecolors="none", label=model)
        if ax is grid.flat[0] and len(model_names) > 1:
            ax.legend(fontsize=7, frameon=False)
        if min(x) > 0 and max(x) / min(x) > 100:
            ax.set_xscale("log")
        ax.set_title(f"{row.measure}\nτ {row.overall}, Ψ {row.granulated}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in grid.flat[len(rows):]:
        ax.set_visible(False)
    for ax in grid[:, 0]:
        ax.set_ylabel("generalization gap", fontsize=8)
    fig.colorbar(points, ax=grid, label="label noise", shrink=0.6)
    figure = save(fig, out / "measures-against-gap.png", tight=False)
    described = ", ".join(axes) or "none"
    return Section(
        "Complexity measures against the generalization gap",
        f"Each measure is oriented so that a larger value should mean a larger gap (train minus test accuracy). "
        f"tau: Kendall's tau-b with the gap over the {len(records)} completed runs that have the measure; granulated "
        f"(Jiang et al. 2019): the mean over the hyperparameter axes ({described}) of the mean tau over groups of runs "
        f"that differ only along that axis. (runs): the number of runs behind each figure. Sorted by granulated tau. Each point "
        f"of the figure is a run, coloured by its label noise, its marker saying its model.", [analysis.table(axes, rows)], [figure])


def section_all_runs(runs_dir: Path) -> Section:
    """Every run of the index, one row each: its data, model, randomization, status and accuracies."""
    if not (runs_dir / INDEX_NAME).exists():
        return Section("All runs", "No training runs in this folder.")
    headers = ["run", "dataset", "model", "label noise", "inputs", "status", "train acc", "test acc", "steps to fit",
               "chance (test)", "message"]
    rows = []
    for row in index_rows(runs_dir):
        c, s = row["config"], row["summary"]
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        rows.append([row["run_id"], c.get("dataset"), c.get("model"), f"{c.get('label_noise'):g}", c.get("inputs"),
                     status_words(row["status"], s), fmt(s.get("train_accuracy")), fmt(s.get("test_accuracy")),
                     str(s.get("steps_to_fit") if s.get("steps_to_fit") is not None else "-"),
                     fmt(s.get("chance_test_accuracy")), s.get("message", "")])
    return Section("All runs", f"{len(rows)} run(s) in the index. chance (test): the accuracy of a guess on the test "
                   "labels the run was tested on, 1/K for clean labels and (1-p')^2 + p'^2/(K-1) for labels corrupted "
                   "at the realized rate p'. A run that ran all its epochs without reaching its fit threshold is "
                   f"'complete, {DID_NOT_FIT}'.", [(headers, rows)])


# ---------------------------------------------------------------------------------------------- output
def _markdown(sections: list[Section], out: Path) -> str:
    lines = ["# rethinkgen report", ""]
    for section in sections:
        lines += [f"## {section.title}", ""] + ([section.text, ""] if section.text else [])
        for figure in section.figures:
            lines += [f"![{section.title}]({figure.relative_to(out)})", ""]
        for headers, rows in section.tables:
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + "---|" * len(headers))
            lines += ["| " + " | ".join(str(cell).replace("|", "/") for cell in row) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)


def _html(sections: list[Section]) -> str:
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>rethinkgen report</title><style>",
             "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}"
             "img{max-width:100%}", "</style></head><body><h1>rethinkgen report</h1>"]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        for figure in section.figures:
            encoded = base64.b64encode(figure.read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(section.title)}' src='data:image/png;base64,{encoded}'>")
        for headers, rows in section.tables:
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


THEORY = "theory"  # the runs folder's sub-folder of stored sections and their figures


def save_section(runs_dir: str | Path, name: str, section: Section) -> Path:
    """Store a finished section (e.g. a theory result) in the runs folder, for every later report. Its
    figures must lie in the ``theory`` folder beside it: they are stored by file name."""
    folder = Path(runs_dir) / THEORY
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_name(name, 'result name')}.json"
    for figure in section.figures:
        if Path(figure).resolve().parent != folder.resolve():
            raise ValueError(f"figure {figure} of section {name!r} is not in {folder}")
    atomic_write_text(path, json.dumps({"title": section.title, "text": section.text, "tables": section.tables,
                                        "figures": [Path(f).name for f in section.figures]}, indent=2))
    return path


def stored_figure(runs_dir: Path, entry, where: Path) -> Path | None:
    """The PNG that a stored section lists as ``entry``, if it is a file of the runs folder's theory folder.
    Entries are file names (older results stored absolute paths into that folder: their name is used);
    anything else (another folder, a link out of the runs folder, not a PNG) is refused with a warning."""
    name = Path(str(entry)).name
    figure = runs_dir / THEORY / name
    shown = repr(str(entry)[:100])
    try:
        inside = safe_name(name, "figure") and figure.resolve().is_relative_to(runs_dir.resolve())
    except RethinkgenError:
        inside = False
    if not inside or figure.suffix != ".png":
        warn(f"{where}: figure {shown} is not a PNG of {runs_dir / THEORY}; left out of the report")
        return None
    if not figure.is_file():
        warn(f"{where}: figure {shown} is not in {runs_dir / THEORY}; left out of the report")
        return None
    return figure


def _stored_sections(runs_dir: Path, out: Path) -> list[Section]:
    sections = []
    for path in sorted((runs_dir / THEORY).glob("*.json")):
        try:
            stored = read_json(path)
            section = Section(str(stored["title"]), str(stored["text"]),
                              [(list(map(str, headers)), [list(map(str, row)) for row in rows])
                               for headers, rows in stored["tables"]])
            entries = list(stored.get("figures") or [])
        except (RethinkgenError, KeyError, TypeError, ValueError) as error:
            warn(f"{path} cannot be read ({type(error).__name__}: {str(error)[:120]}); left out of the report")
            continue
        for figure in filter(None, (stored_figure(runs_dir, entry, path) for entry in entries)):
            copy = out / figure.name  # beside the report, so that report.md's links work
            if copy.resolve() != figure.resolve():
                copy.write_bytes(figure.read_bytes())
                svg = figure.with_suffix(".svg")
                if svg.is_file() and svg.resolve().is_relative_to(runs_dir.resolve()):
                    copy.with_suffix(".svg").write_bytes(svg.read_bytes())
            section.figures.append(copy)
        sections.append(section)
    return sections


def section_of(preset) -> Callable:
    """The section function of sweeps of ``preset`` (a plain table for a sweep that is no preset)."""
    preset = OLDER_PRESET_NAMES.get(preset, preset)
    return PRESETS[preset].section if preset in PRESETS else section_sweep


def _sweep_section(runs_dir: Path, manifest_path: Path, out: Path) -> Section | None:
    """The section of one sweep manifest; a manifest that is damaged or names a bad sweep name or run id
    is left out with a warning (its name becomes figure file names, its run ids folder names)."""
    try:
        manifest = read_json(manifest_path)
        name = safe_name(manifest.get("name"), "sweep name")
        runs = [load_run(runs_dir, check_run_id(r["run_id"]), str(r.get("label", "")), r.get("group") or {},
                         r.get("config") or {}) for r in manifest["runs"]]
        return section_of(manifest.get("preset"))(name, runs, out)
    except (RethinkgenError, KeyError, TypeError, ValueError, AttributeError) as error:
        warn(f"sweep manifest {manifest_path} cannot be used ({type(error).__name__}: {str(error)[:160]}); "
             f"left out of the report")
        return None


def build_sections(runs_dir: Path, out: Path) -> list[Section]:
    """The report's sections, in order: each sweep's (by its preset), the stored theory results, the complexity
    measures against the gap, and all runs.

    Args:
        runs_dir: the runs folder.
        out: the folder the figures are written to.
    """
    sections = []
    for manifest_path in sorted((runs_dir / "sweeps").glob("*.json")):
        section = _sweep_section(runs_dir, manifest_path, out)
        sections += [section] if section else []
    sections += _stored_sections(runs_dir, out)
    if (runs_dir / INDEX_NAME).exists():
        measured = section_measures(runs_dir, out)
        sections += [measured] if measured else []
    sections.append(section_all_runs(runs_dir))
    return sections


def write_report(runs_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write report.html, report.md and the figures; return their paths."""
    runs_dir = Path(runs_dir)
    if not (runs_dir / INDEX_NAME).exists() and not (runs_dir / "theory").is_dir():
        raise RethinkgenError(f"{runs_dir} is not a runs folder (no {INDEX_NAME}); run a sweep or a run first")
    out = Path(out) if out else runs_dir / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RethinkgenError(f"report folder {out} cannot be written: {error}") from None
    with plt.rc_context(PLAIN_TEXT):
        sections = build_sections(runs_dir, out)
    atomic_write_text(out / "report.md", _markdown(sections, out))
    atomic_write_text(out / "report.html", _html(sections))
    figures = [f for s in sections for f in s.figures]
    return [out / "report.html", out / "report.md"] + figures + [f.with_suffix(".svg") for f in figures]
