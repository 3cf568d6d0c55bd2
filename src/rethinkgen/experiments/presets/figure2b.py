"""Figure 2b: train and test accuracy against steps, with and without batch norm (a fixed budget)."""

from __future__ import annotations

from pathlib import Path

from rethinkgen.experiments.presets.registry import register_preset
from rethinkgen.report import Run, Section, by_model, is_paper_data, mean_sd, status_of
from rethinkgen.report.figures import COLORS, plt, save, step_unit

# the paper's plateau of test accuracy (read off the plot, CIFAR-10; Table 1 gives 85.75 and 82.00)
TEST_PLATEAU = {"inception-small": 0.865, "inception-small-nobn": 0.85}


def section(name: str, runs: list[Run], out: Path) -> Section:
    """Train and test accuracy against steps per model, shaded up to the best test accuracy so far (see
    ``Preset.section``)."""
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
            row.append(f"{TEST_PLATEAU.get(model, '-')}")
        rows.append(row)
    ax.set(xlabel=unit_label, ylabel="accuracy", title="train (solid), test (dashed); shaded: best test so far")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    figure = save(fig, out / f"{name}-figure2b.png")
    return Section(f"Figure 2b: batch normalization ({name})",
                   "The shaded area is the gain early stopping could have had.", [(headers, rows)], [figure])


@register_preset("figure2b", "Figure 2b: train and test accuracy against steps, with and without batch norm",
                 epochs={"paper": 52, "small": 60, "tiny": 100},  # Figure 2b runs to 20k steps = 52 epochs
                 models=["inception-small", "inception-small-nobn"], section=section, fixed_budget=True)
def rows(model: str):
    """One run per model."""
    yield model, {"batch_norm": model == "inception-small"}, {}
