"""Reports: figures and tables of the paper, drawn from a runs folder only.

``write_report(runs_dir)`` reads the run store (the index, each run's files and the sweep manifests in
``sweeps/``) and writes ``report.html`` (self-contained, figures embedded), ``report.md`` and every
figure as PNG and SVG. Each sweep made from a preset gets the section of its figure or table, with the
paper's values beside the measured ones when the data is CIFAR-10 (ImageNet for Table 2); several seeds are shown as mean and
standard deviation; runs that are pending, running, interrupted, diverged or failed are listed as such.
Runs with complexity measures get a section testing each measure against the generalization gap.
"""

from __future__ import annotations

import base64
import html
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rethinkgen import measures  # noqa: E402
from rethinkgen.errors import RethinkgenError, warn  # noqa: E402
from rethinkgen.measures import (
    analysis,  # noqa: E402
    runs as stored,  # noqa: E402
)
from rethinkgen.outcome import DID_NOT_FIT, did_not_fit, status_words  # noqa: E402
from rethinkgen.report import paper  # noqa: E402
from rethinkgen.report.figures import PLAIN_TEXT, step_unit  # noqa: E402
from rethinkgen.store import (  # noqa: E402
    INDEX_NAME,
    StoredRun,
    atomic_write_text,
    check_run_id,
    index_rows,
    is_finished,  # noqa: E402
    read_json,
    read_summary,
    run_path,
    safe_name,
)

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


@dataclass
class Run(StoredRun):
    run_id: str
    label: str
    group: dict
    config: dict
    status: str
    summary: dict
    run_dir: Path

    def get(self, key):
        return self.summary.get(key) if is_finished(self.status) else None


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def load_run(runs_dir: Path, run_id: str, label: str = "", group: dict | None = None, config: dict | None = None) -> Run:
    """A run of the store as reports see it; a run whose files cannot be read is "unreadable" (with a warning)."""
    run_dir = run_path(runs_dir, run_id)
    try:
        summary = read_summary(run_dir) or {}
        if not config and (run_dir / "config.json").exists():
            config = read_json(run_dir / "config.json")
    except RethinkgenError as damaged:
        warn(f"{damaged}; the report shows run {run_id} as unreadable")
        return Run(run_id, label, group or {}, config or {}, "unreadable", {}, run_dir)
    return Run(run_id, label, group or {}, config or {}, summary.get("status", "pending"), summary, run_dir)


# ---------------------------------------------------------------------------------------------- numbers
def mean_sd(values, digits: int = 3, scale: float = 1.0) -> str:
    values = [v * scale for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f} (n={len(values)})"


def status_of(runs: list[Run]) -> str:
    """The runs' statuses counted (``3 complete (1 did not fit), 1 failed``)."""
    counts = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    unfitted = sum(did_not_fit(run.status, run.summary) for run in runs)
    return ", ".join(f"{n} {status}" + (f" ({unfitted} {DID_NOT_FIT})" if status == "complete" and unfitted else "")
                     for status, n in sorted(counts.items()))


def by_label(runs: list[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    return groups


def by_model_and_label(runs: list[Run]) -> dict[tuple[str, str], list[Run]]:
    """Seeds of one row: the same label can name a row of several models (e.g. Table 1's settings)."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.group.get("model", run.config.get("model")), run.label), []).append(run)
    return groups


def by_model(runs: list[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group.get("model", run.config.get("model", "?")), []).append(run)
    return groups


def is_paper_data(runs: list[Run]) -> bool:
    return bool(runs) and all(run.config.get("dataset") == paper.PAPER_DATASET and not run.config.get("subset")
                              for run in runs)


def save(fig, path: Path, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- sections
def section_figure1a(name: str, runs: list[Run], out: Path) -> Section:
    models = by_model(runs)
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.5), squeeze=False)
    unit, unit_label = step_unit(max((r.summary.get("steps") or 0 for r in runs), default=0))
    for ax, (model, model_runs) in zip(axes[0], models.items()):
        for i, (label, group) in enumerate(by_label(model_runs).items()):
            for j, run in enumerate(group):
                steps = run.steps
                ax.plot([r["step"] / unit for r in steps], [r["loss"] for r in steps], color=COLORS[i % len(COLORS)],
                        alpha=1.0 if len(group) == 1 else 0.6, label=label if j == 0 else None)
        ax.set(title=model, xlabel=unit_label, ylabel="average training loss", ylim=(0, None))
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    figure = save(fig, out / f"{name}-figure1a.png")
    paper_values = is_paper_data(runs)
    headers = ["model", "setting", "steps to fit", "train acc", "test acc", "status"]
    headers += ["paper: loss ~0 at (k steps)"] if paper_values else []
    rows = []
    for model, model_runs in models.items():
        for label, group in by_label(model_runs).items():
            row = [model, label, mean_sd([r.get("steps_to_fit") for r in group], 0),
                   mean_sd([r.get("train_accuracy") for r in group]), mean_sd([r.get("test_accuracy") for r in group]),
                   status_of(group)]
            if paper_values:
                row.append(paper.FIGURE1A_FIT_KSTEPS.get(label, "-") if model == "inception-small" else "-")
            rows.append(row)
    return Section(f"Figure 1a: learning curves ({name})",
                   "Running mean training loss against steps for each randomization.", [(headers, rows)], [figure])


def _relative_fit(group_by_noise: dict[float, list[Run]]) -> dict[float, list[float]]:
    """Steps to fit relative to noise 0 of the same seed."""
    base = {run.group.get("seed"): run.get("steps_to_fit") for run in group_by_noise.get(0.0, [])}
    ratios = {}
    for noise, group in group_by_noise.items():
        ratios[noise] = [run.get("steps_to_fit") / base[run.group.get("seed")] for run in group
                         if run.get("steps_to_fit") and base.get(run.group.get("seed"))]
    return ratios


def section_figure1bc(name: str, runs: list[Run], out: Path) -> Section:
    paper_values = is_paper_data(runs)
    fig, (ax_b, ax_c) = plt.subplots(1, 2, figsize=(12, 4.5))
    headers = ["model", "label noise", "steps to fit", "time to fit (rel.)", "test error", "status"]
    headers += ["paper: time to fit", "paper: test error"] if paper_values else []
    rows, chance = [], None
    for i, (model, model_runs) in enumerate(by_model(runs).items()):
        color = COLORS[i % len(COLORS)]
        noise_groups: dict[float, list[Run]] = {}
        for run in model_runs:
            noise_groups.setdefault(float(run.group.get("label_noise", run.config.get("label_noise"))), []).append(run)
        noises = sorted(noise_groups)
        ratios = _relative_fit(noise_groups)
        errors = {p: [1 - r.get("test_accuracy") for r in noise_groups[p] if r.get("test_accuracy") is not None]
                  for p in noises}
        for ax, values in ((ax_b, ratios), (ax_c, errors)):
            xs = [p for p in noises if values[p]]
            means = [statistics.mean(values[p]) for p in xs]
            spread = [statistics.stdev(values[p]) if len(values[p]) > 1 else 0 for p in xs]
            ax.errorbar(xs, means, yerr=spread, color=color, marker="o", capsize=3, label=f"{model} (measured)")
        if paper_values and model in paper.FIGURE1B:
            ax_b.plot(paper.NOISE_LEVELS, paper.FIGURE1B[model], color=color, linestyle=":", label=f"{model} (paper)")
            ax_c.plot(paper.NOISE_LEVELS, paper.FIGURE1C[model], color=color, linestyle=":", label=f"{model} (paper)")
        classes = model_runs[0].summary.get("num_classes") or 10
        chance = 1 - 1 / classes
        for p in noises:
            row = [model, f"{p:g}", mean_sd([r.get("steps_to_fit") for r in noise_groups[p]], 0),
                   mean_sd(ratios[p], 2), mean_sd(errors[p]), status_of(noise_groups[p])]
            if paper_values:
                k = paper.NOISE_LEVELS.index(p) if p in paper.NOISE_LEVELS else None
                row += [f"{paper.FIGURE1B[model][k]:g}" if model in paper.FIGURE1B and k is not None else "-",
                        f"{paper.FIGURE1C[model][k]:g}" if model in paper.FIGURE1C and k is not None else "-"]
            rows.append(row)
    ax_c.axhline(chance or 0.9, color="red", linestyle="--", label="chance")
    ax_b.set(title="(b) convergence slowdown", xlabel="label corruption", ylabel="time to fit (relative)")
    ax_c.set(title="(c) generalization error growth", xlabel="label corruption", ylabel="test error", ylim=(0, 1))
    for ax in (ax_b, ax_c):
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    figure = save(fig, out / f"{name}-figure1bc.png")
    return Section(f"Figures 1b and 1c: label corruption ({name})",
                   "Time to fit is steps to reach the fit threshold, relative to label noise 0 of the same model and "
                   "seed; test error is measured when the run stops (at fit, or at its epoch budget).",
                   [(headers, rows)], [figure])


def _yes(flag) -> str:
    return "yes" if flag else "no"


def section_table1(name: str, runs: list[Run], out: Path) -> Section:
    paper_values = is_paper_data(runs)
    headers = ["model", "params", "random crop", "weight decay", "labels", "train acc", "test acc", "status"]
    headers += ["paper: train acc", "paper: test acc"] if paper_values else []
    rows = []
    for (model, _), group in by_model_and_label(runs).items():
        g = group[0].group
        row = [model, f"{group[0].summary.get('parameters', 0):,}", _yes(g.get("crop")), _yes(g.get("weight_decay")),
               "random" if g.get("random_labels") else "true", mean_sd([r.get("train_accuracy") for r in group], 2, 100),
               mean_sd([r.get("test_accuracy") for r in group], 2, 100), status_of(group)]
        if paper_values:
            value = paper.TABLE1.get((model, g.get("crop"), g.get("weight_decay"), g.get("random_labels")))
            row += [f"{value[0]:.2f}", f"{value[1]:.2f}"] if value else ["-", "-"]
        rows.append(row)
    rows.sort(key=lambda r: r[0])
    return Section(f"Table 1: the effect of explicit regularizers ({name})",
                   "Accuracy (%) on the full training set (eval mode) and the test set when each run stops.",
                   [(headers, rows)])


def section_table4(name: str, runs: list[Run], out: Path) -> Section:
    paper_values = is_paper_data(runs)
    headers = ["model", "regularizer", "train acc (eval)", "train acc (online, augmented)", "epochs", "status"]
    headers += ["paper: training accuracy"] if paper_values else []
    rows = []
    for (model, _), group in by_model_and_label(runs).items():
        regularizer = group[0].group.get("regularizer")
        row = [model, regularizer, mean_sd([r.get("train_accuracy") for r in group], 2, 100),
               mean_sd([r.get("online_accuracy") for r in group], 2, 100),
               mean_sd([r.get("epochs_completed") for r in group], 0), status_of(group)]
        if paper_values:
            row.append(paper.TABLE4.get((model, regularizer), "-"))
        rows.append(row)
    return Section(f"Table 4: fitting random labels with explicit regularizers ({name})",
                   "Training accuracy (%) on random labels. The paper's figure for augmented runs is the online "
                   "accuracy of the minibatches seen while training, given here beside the eval-mode accuracy.",
                   [(headers, rows)])


def section_figure2b(name: str, runs: list[Run], out: Path) -> Section:
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    headers = ["model", "final train acc", "final test acc", "best test acc", "status"]
    paper_values = is_paper_data(runs)
    headers += ["paper: test plateau"] if paper_values else []
    rows = []
    unit, unit_label = step_unit(max((r.summary.get("steps") or 0 for r in runs), default=0))
    for i, (model, group) in enumerate(by_model(runs).items()):
        color = COLORS[i % len(COLORS)]
        for j, run in enumerate(group):
            metrics = run.metrics
            x = [r["step"] / unit for r in metrics]
            test = [r["test_accuracy"] for r in metrics]
            best = [max(test[:k + 1]) for k in range(len(test))]
            ax.plot(x, [r["train_accuracy"] for r in metrics], color=color, label=f"{model} train" if j == 0 else None)
            ax.plot(x, test, color=color, linestyle="--", label=f"{model} test" if j == 0 else None)
            ax.fill_between(x, test, best, color=color, alpha=0.2)
        row = [model, mean_sd([r.get("train_accuracy") for r in group]), mean_sd([r.get("test_accuracy") for r in group]),
               mean_sd([r.get("best_test_accuracy") for r in group]), status_of(group)]
        if paper_values:
            row.append(f"{paper.FIGURE2B_TEST_PLATEAU.get(model, '-')}")
        rows.append(row)
    ax.set(xlabel=unit_label, ylabel="accuracy", title="train (solid), test (dashed); shaded: best test so far")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    figure = save(fig, out / f"{name}-figure2b.png")
    return Section(f"Figure 2b: batch normalization ({name})",
                   "The shaded area is the gain early stopping could have had.", [(headers, rows)], [figure])


def is_imagenet(runs: list[Run]) -> bool:
    """Whole image folders of 1000 classes: the only runs Table 2's numbers are printed beside."""
    return bool(runs) and all(run.config.get("dataset") == "imagefolder" and not run.config.get("subset")
                              and not run.config.get("test_subset")
                              and run.summary.get("num_classes") == paper.TABLE2_CLASSES for run in runs)


def _with_best(final: list[Run], key: str) -> str:
    """Final accuracy (%) with the best seen during training in parentheses, as Table 2 prints it."""
    value = mean_sd([r.get(key) for r in final], 2, 100)
    best = mean_sd([r.get(f"best_{key}") for r in final], 2, 100)
    return value if value == "-" else f"{value} ({best})"


def section_table2(name: str, runs: list[Run], out: Path) -> Section:
    paper_values = is_imagenet(runs)
    headers = ["model", "labels", "data aug", "dropout", "weight decay", "top-1 train", "top-5 train",
               "top-1 test (best)", "top-5 test (best)", "epochs", "status"]
    headers += ["paper: top-1 train", "paper: top-5 train", "paper: top-1 test", "paper: top-5 test"] \
        if paper_values else []
    rows = []
    for (model, _), group in by_model_and_label(runs).items():
        g = group[0].group
        row = [model, "random" if g.get("random_labels") else "true", _yes(g.get("augmentation")),
               _yes(g.get("dropout")), _yes(g.get("weight_decay")),
               mean_sd([r.get("train_accuracy") for r in group], 2, 100),
               mean_sd([r.get("train_top5_accuracy") for r in group], 2, 100),
               _with_best(group, "test_accuracy"), _with_best(group, "test_top5_accuracy"),
               mean_sd([r.get("epochs_completed") for r in group], 0), status_of(group)]
        if paper_values:
            value = paper.TABLE2.get((g.get("random_labels"), g.get("augmentation"), g.get("dropout"),
                                      g.get("weight_decay")))
            row += [f"{value[0]:.2f}", f"{value[1]:.2f}",
                    f"{value[2]:.2f}" + (f" ({value[4]:.2f})" if value[4] else ""),
                    f"{value[3]:.2f}" + (f" ({value[5]:.2f})" if value[5] else "")] if value else ["-"] * 4
        rows.append(row)
    return Section(f"Table 2: ImageNet-style data, top-1 and top-5 accuracy ({name})",
                   "Accuracy (%) on the full training set (eval mode, un-augmented) and the test set after the "
                   "epoch budget, with the best test accuracy seen at any epoch end in parentheses. The paper's "
                   "numbers stand beside them only for a whole 1000-class folder (ILSVRC 2012).",
                   [(headers, rows)])


def section_sweep(name: str, runs: list[Run], out: Path) -> Section:
    headers = ["run", "train acc", "test acc", "gap", "steps to fit", "status"]
    rows = [[label, mean_sd([r.get("train_accuracy") for r in group]), mean_sd([r.get("test_accuracy") for r in group]),
             mean_sd([r.get("generalization_gap") for r in group]), mean_sd([r.get("steps_to_fit") for r in group], 0),
             status_of(group)] for label, group in by_label(runs).items()]
    return Section(f"Sweep {name}", "", [(headers, rows)])


def section_population(name: str, runs: list[Run], out: Path) -> Section:
    """The measures preset's runs, one row per model and setting (their measures have a section of their own)."""
    headers = ["model", "label noise", "weight decay", "train acc", "test acc", "gap", "steps to fit", "status"]
    rows = [[model, f"{group[0].group.get('label_noise'):g}", f"{group[0].group.get('weight_decay'):g}",
             mean_sd([r.get("train_accuracy") for r in group]), mean_sd([r.get("test_accuracy") for r in group]),
             mean_sd([r.get("generalization_gap") for r in group]), mean_sd([r.get("steps_to_fit") for r in group], 0),
             status_of(group)] for (model, _), group in by_model_and_label(runs).items()]
    return Section(f"The measures population ({name})", "Several seeds are shown as mean ± standard deviation (n).",
                   [(headers, rows)])


from rethinkgen.report.dynamics import section_double_descent, section_memorization  # noqa: E402

SECTIONS = {"figure1a": section_figure1a, "demo": section_figure1a, "figure1bc": section_figure1bc, "table1": section_table1,
            "table4": section_table4, "figure2b": section_figure2b, "measures": section_population,
            "table2": section_table2, "memorization": section_memorization,
            "double-descent": section_double_descent}


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


def _sweep_section(runs_dir: Path, manifest_path: Path, out: Path) -> Section | None:
    """The section of one sweep manifest; a manifest that is damaged or names a bad sweep name or run id
    is left out with a warning (its name becomes figure file names, its run ids folder names)."""
    try:
        manifest = read_json(manifest_path)
        name = safe_name(manifest.get("name"), "sweep name")
        runs = [load_run(runs_dir, check_run_id(r["run_id"]), str(r.get("label", "")), r.get("group") or {},
                         r.get("config") or {}) for r in manifest["runs"]]
        return SECTIONS.get(manifest.get("preset"), section_sweep)(name, runs, out)
    except (RethinkgenError, KeyError, TypeError, ValueError, AttributeError) as error:
        warn(f"sweep manifest {manifest_path} cannot be used ({type(error).__name__}: {str(error)[:160]}); "
             f"left out of the report")
        return None


def build_sections(runs_dir: Path, out: Path) -> list[Section]:
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
