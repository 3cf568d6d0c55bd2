"""Figure 1a: training loss against steps on true labels, random labels, shuffled pixels, random pixels
and Gaussian inputs, each run until it fits."""

from __future__ import annotations

from pathlib import Path

from rethinkgen.experiments.presets.registry import register_preset
from rethinkgen.report import Run, Section, by_label, by_model, is_paper_data, mean_sd, status_of
from rethinkgen.report.figures import COLORS, plt, save, step_unit

SETTINGS = [("true labels", 0.0, "original"), ("random labels", 1.0, "original"),
            ("shuffled pixels", 0.0, "shuffled-pixels"), ("random pixels", 0.0, "random-pixels"),
            ("gaussian", 0.0, "gaussian")]  # (label, label noise, inputs)
# the demo adds half-corrupted labels to Figure 1a's settings
DEMO_SETTINGS = SETTINGS[:1] + [("label noise 0.5", 0.5, "original")] + SETTINGS[1:]
# the paper's: the step (thousands) at which the small Inception's loss reaches about 0 (read off the plot,
# CIFAR-10)
FIT_KSTEPS = {"true labels": "4.5-5", "shuffled pixels": "6", "gaussian": "8", "random pixels": "9",
              "random labels": "14"}


def section(name: str, runs: list[Run], out: Path) -> Section:
    """Loss curves per model, one per setting, and a table of steps to fit and accuracies (see
    ``Preset.section``)."""
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
                row.append(FIT_KSTEPS.get(label, "-") if model == "inception-small" else "-")
            rows.append(row)
    return Section(f"Figure 1a: learning curves ({name})",
                   "Running mean training loss against steps for each randomization.", [(headers, rows)], [figure])


def rows_of(settings: list[tuple[str, float, str]]):
    """The rows function of Figure 1a's runs over ``settings`` ((label, label noise, inputs) each)."""
    def rows(model: str):
        for label, noise, inputs in settings:
            yield label, {"setting": label}, {"label_noise": noise, "inputs": inputs}
    return rows


rows = rows_of(SETTINGS)
demo_rows = rows_of(DEMO_SETTINGS)
register_preset(
    "figure1a", "Figure 1a: training loss against steps on true labels, random labels, shuffled pixels, "
    "random pixels and Gaussian inputs",
    epochs={"paper": 64, "small": 150, "tiny": 600},  # Figure 1a runs to 25k steps = 64 epochs
    models=["inception-small"], section=section)(rows)
