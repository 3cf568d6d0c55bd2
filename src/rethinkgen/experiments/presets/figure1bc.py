"""Figures 1b and 1c: time to fit relative to no noise, and test error after fitting, at label noise
0, 0.1, ..., 1.

"Time to fit" (Figure 1b) is the number of steps to the fit threshold, relative to the same model and
seed with no label noise. The paper's values were read off its plots (about +-0.05) and apply to CIFAR-10.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from rethinkgen.experiments.presets.registry import register_preset
from rethinkgen.report import Run, Section, by_model, is_paper_data, mean_sd, status_of
from rethinkgen.report.figures import COLORS, plt, save

NOISE_LEVELS = [round(0.1 * i, 1) for i in range(11)]
# the paper's Figure 1b: time to overfit relative to label noise 0 (read off the plot)
FIGURE1B = {
    "inception-small": [1.0, 1.6, 1.9, 2.2, 2.4, 2.5, 2.7, 2.9, 3.1, 3.6, 3.6],
    "mlp-1x512": [1.0, 1.29, 1.43, 1.57, 1.68, 1.78, 1.93, 1.93, 1.97, 2.0, 1.97],
    "alexnet-small": [1.0, 1.06, 1.10, 1.16, 1.23, 1.26, 1.32, 1.35, 1.42, 1.52, 1.55],
}
# the paper's Figure 1c: test error after convergence (read off the plot)
FIGURE1C = {
    "inception-small": [0.13, 0.28, 0.41, 0.52, 0.63, 0.71, 0.785, 0.84, 0.875, 0.905, 0.90],
    "alexnet-small": [0.30, 0.41, 0.52, 0.62, 0.69, 0.76, 0.82, 0.855, 0.88, 0.89, 0.90],
    "mlp-1x512": [0.50, 0.585, 0.66, 0.72, 0.755, 0.795, 0.865, 0.865, 0.88, 0.89, 0.90],
}


def relative_fit(group_by_noise: dict[float, list[Run]]) -> dict[float, list[float]]:
    """Steps to fit relative to noise 0 of the same seed, for each noise level."""
    base = {run.group.get("seed"): run.get("steps_to_fit") for run in group_by_noise.get(0.0, [])}
    ratios = {}
    for noise, group in group_by_noise.items():
        ratios[noise] = [run.get("steps_to_fit") / base[run.group.get("seed")] for run in group
                         if run.get("steps_to_fit") and base.get(run.group.get("seed"))]
    return ratios


def _paper_row(model: str, noise: float) -> list[str]:
    """The paper's time to fit and test error for ``model`` at ``noise`` (``-`` where it has none)."""
    k = NOISE_LEVELS.index(noise) if noise in NOISE_LEVELS else None
    return [f"{FIGURE1B[model][k]:g}" if model in FIGURE1B and k is not None else "-",
            f"{FIGURE1C[model][k]:g}" if model in FIGURE1C and k is not None else "-"]


def section(name: str, runs: list[Run], out: Path) -> Section:
    """(b) time to fit and (c) test error against label noise per model, and their table (see
    ``Preset.section``)."""
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
        ratios = relative_fit(noise_groups)
        errors = {p: [1 - r.get("test_accuracy") for r in noise_groups[p] if r.get("test_accuracy") is not None]
                  for p in noises}
        for ax, values in ((ax_b, ratios), (ax_c, errors)):
            xs = [p for p in noises if values[p]]
            means = [statistics.mean(values[p]) for p in xs]
            spread = [statistics.stdev(values[p]) if len(values[p]) > 1 else 0 for p in xs]
            ax.errorbar(xs, means, yerr=spread, color=color, marker="o", capsize=3, label=f"{model} (measured)")
        if paper_values and model in FIGURE1B:
            ax_b.plot(NOISE_LEVELS, FIGURE1B[model], color=color, linestyle=":", label=f"{model} (paper)")
            ax_c.plot(NOISE_LEVELS, FIGURE1C[model], color=color, linestyle=":", label=f"{model} (paper)")
        chance = 1 - 1 / (model_runs[0].summary.get("num_classes") or 10)
        for p in noises:
            rows.append([model, f"{p:g}", mean_sd([r.get("steps_to_fit") for r in noise_groups[p]], 0),
                         mean_sd(ratios[p], 2), mean_sd(errors[p]), status_of(noise_groups[p])]
                        + (_paper_row(model, p) if paper_values else []))
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


@register_preset("figure1bc", "Figures 1b and 1c: time to fit relative to no noise, and test error after fitting, "
                 "at label noise 0, 0.1, ..., 1", epochs={"paper": 100, "small": 150, "tiny": 600},
                 models=["inception-small", "alexnet-small", "mlp-1x512"], section=section)
def rows(model: str):
    """One run per label noise level."""
    for noise in NOISE_LEVELS:
        yield f"label noise {noise:g}", {"label_noise": noise}, {"label_noise": noise}
