"""The main job: a randomization test on one dataset and model, ending in a figure and a table.

A thin layer over the ``figure1a`` preset: it trains the same network on true labels, half-corrupted
labels, random labels, shuffled pixels, random pixels and Gaussian inputs, each until it fits the
training set (or runs out of epochs), and reports how fast each fits and what is left of its test
accuracy.
"""

from __future__ import annotations

from pathlib import Path

from rethinkgen.errors import RethinkgenError
from rethinkgen.experiments import presets
from rethinkgen.experiments.presets import figure1a
from rethinkgen.experiments.sweep import run_sweep
from rethinkgen.outcome import DID_NOT_FIT, status_words
from rethinkgen.report import Run, load_run
from rethinkgen.report.figures import plot_learning_curves
from rethinkgen.store import atomic_write_text, safe_name

DEMO_EPOCHS = 600
# The paper decays the learning rate x0.95 per CIFAR-10 epoch of 391 steps. The demo's datasets are small
# (digits: 11 steps per epoch), so it holds the rate constant: every setting fits within the budget.
DEMO_LR_DECAY = 1.0


def results_table(runs: list[Run]) -> str:
    """A Markdown table: accuracy, gap, and time to fit relative to true labels."""
    baseline = next((r.summary.get("steps_to_fit") for r in runs if r.label == "true labels"), None)
    lines = ["| setting | label noise | inputs | labels changed | train acc | test acc | gap | steps to fit "
             "| relative time to fit | status |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        s, c = run.summary, run.config
        fit = s.get("steps_to_fit")
        relative = f"{fit / baseline:.2f}" if fit and baseline else "-"
        if s.get("train_accuracy") is None:
            lines.append(f"| {run.label} | {c['label_noise']:g} | {c['inputs']} | - | - | - | - | - | - "
                         f"| {status_words(run.status, s)} |")
            continue
        lines.append(
            f"| {run.label} | {c['label_noise']:g} | {c['inputs']} | {s['fraction_labels_changed']:.1%} "
            f"| {s['train_accuracy']:.4f} | {s['test_accuracy']:.4f} | {s['generalization_gap']:+.4f} "
            f"| {fit if fit is not None else DID_NOT_FIT} | {relative} | {status_words(run.status, s)} |")
    return "\n".join(lines) + "\n" + chance_line(runs)


def chance_line(runs: list[Run]) -> str:
    """A line under the table: the chance accuracy on the test labels the runs were tested on."""
    chances = {run.label: run.summary.get("chance_test_accuracy") for run in runs
               if run.summary.get("chance_test_accuracy") is not None}
    if not chances:
        return ""
    classes = next(run.summary["num_classes"] for run in runs if run.summary.get("num_classes"))
    if len(set(chances.values())) == 1:
        return (f"\nChance accuracy on the test labels: {next(iter(chances.values())):.4f} "
                f"(1/K with K = {classes} classes, for clean test labels).\n")
    each = "; ".join(f"{label} {chance:.4f}" for label, chance in chances.items())
    return (f"\nChance accuracy on the test labels in use (1/K for clean labels, (1-p')^2 + p'^2/(K-1) for labels "
            f"corrupted at the realized rate p'): {each}.\n")


def run_demo(out: str | Path = "runs", progress: bool = True, dataset: str | None = None, model: str | None = None,
             subset: int | None = None, test_subset: int | None = None, epochs: int | None = None,
             seed: int | None = None, data_dir: str | None = None) -> tuple[str, Path, Path]:
    """Run the six settings (skipping those already in ``out``); return (table, table path, figure path).

    Args:
        out: the runs folder.
        progress: show progress bars.
        dataset: the data source (None: the demo's default).
        model: the model (None: the demo's default).
        subset: training examples (None: the demo's default).
        test_subset: test examples (None: the demo's default).
        epochs: the most epochs of each run (None: the demo's default).
        seed: the seed of every run (None: the demo's default).
        data_dir: the folder holding the dataset's files.
    """
    dataset = "digits" if dataset is None else dataset
    model = "mlp-1x512" if model is None else model
    name = safe_name(f"demo-{dataset}-{model.replace(':', '_').replace('.', '_')}", "demo name")
    seed, epochs = 0 if seed is None else seed, DEMO_EPOCHS if epochs is None else epochs  # 0 is refused, not "all"
    sweep = presets.build("figure1a", dataset=dataset, models=[model], seeds=[seed], scale="tiny",
                          data_dir=data_dir, name=name, rows=figure1a.demo_rows,
                          subset=subset, test_subset=test_subset, epochs=epochs, lr_decay=DEMO_LR_DECAY)
    outcome = run_sweep(sweep, out, progress=progress)
    if outcome.failed:
        lines = outcome.lines()
        raise RethinkgenError(f"{outcome.failed} demo run(s) failed; " + (lines[1:] or lines)[0].strip())
    runs = [load_run(Path(out), r.config.run_id(), r.label, r.group, r.config.to_dict()) for r in sweep.runs]
    table = results_table(runs)
    first = sweep.runs[0].config
    title = (f"{model} on {dataset}" + (f" (subset {subset})" if subset else "")
             + f": fit threshold {first.fit_threshold:g}, lr {first.resolved().lr:g}, batch {first.batch_size}")
    table_path = Path(out) / f"{name}.md"
    atomic_write_text(table_path, f"# Randomization test: {title}\n\n{table}")
    figure_path = plot_learning_curves(
        [{"label": run.label, "steps": run.steps, "metrics": run.metrics} for run in runs],
        Path(out) / f"{name}.png", title=title)
    return table, table_path, figure_path
