"""Memorization dynamics (Arpit et al. 2017): accuracy on the kept and on the changed labels against
steps at label noise 0.2, 0.4, 0.6, 0.8, for a fixed budget: the changed labels are memorized long after
the kept ones are fit. Its networks depend on the scale: the MLPs at ``tiny``/``small``, the conv nets
at ``paper``. It reads each run's per-epoch history (``metrics.jsonl``)."""

from __future__ import annotations

from pathlib import Path

from rethinkgen.experiments.presets.registry import register_preset
from rethinkgen.report import Run, Section, by_label, by_model, file_part, first_epoch, mean_sd, status_of
from rethinkgen.report.figures import plot_memorization

NOISE = [0.2, 0.4, 0.6, 0.8]
KEPT_FIT = 0.9          # the kept labels count as learned from this accuracy on them
CHANGED_FIT = 0.5       # the changed labels count as memorized from this accuracy on their new labels


def _final(rows: list[dict], key: str):
    return rows[-1].get(key) if rows else None


def section(name: str, runs: list[Run], out: Path) -> Section:
    """One figure per model (one curve per run) and a table per model and noise level: the epochs where the kept
    labels reach ``KEPT_FIT`` and the changed ones ``CHANGED_FIT``, and the final accuracies (see
    ``Preset.section``)."""
    headers = ["model", "label noise", f"epoch kept >= {KEPT_FIT:g}", f"epoch changed >= {CHANGED_FIT:g}",
               "final kept", "final changed (new labels)", "final changed (original labels)", "final test acc",
               "epochs", "status"]
    rows, figures = [], []
    for model, model_runs in by_model(runs).items():
        curves = []
        for label, group in by_label(model_runs).items():
            histories = [run.history for run in group]
            for run, history in zip(group, histories):
                seed = f", seed {run.group.get('seed')}" if len(group) > 1 else ""
                curves.append({"label": f"{label}{seed}", "metrics": history})
            noise = group[0].group.get("label_noise", group[0].config.get("label_noise"))
            rows.append([model, f"{noise:g}" if isinstance(noise, (int, float)) else label, mean_sd([first_epoch(h, "unchanged_accuracy", KEPT_FIT) for h in histories], 0),
                         mean_sd([first_epoch(h, "changed_accuracy", CHANGED_FIT) for h in histories], 0),
                         mean_sd([_final(h, "unchanged_accuracy") for h in histories]),
                         mean_sd([_final(h, "changed_accuracy") for h in histories]),
                         mean_sd([_final(h, "changed_original_accuracy") for h in histories]),
                         mean_sd([_final(h, "test_accuracy") for h in histories]),
                         mean_sd([len(h) for h in histories if h], 0), status_of(group)])
        if any(curve["metrics"] for curve in curves):
            figures.append(plot_memorization(curves, out / f"{name}-memorization-{file_part(model)}.png",
                                             title=f"{model} ({name})"))
    return Section(f"Memorization dynamics ({name})",
                   "Training accuracy on the examples whose label the noise kept, on the changed examples against "
                   "their new labels, and on the changed examples against their original labels (Arpit et al. 2017). "
                   f"'epoch kept': the first epoch where the kept labels reach {KEPT_FIT:g}; 'epoch changed': the "
                   f"first where the changed labels reach {CHANGED_FIT:g} ('-': never within the budget).",
                   [(headers, rows)], figures)


@register_preset("memorization", "Memorization dynamics (Arpit et al. 2017): accuracy on the kept and on the "
                 "changed labels against steps at label noise 0.2, 0.4, 0.6, 0.8, for a fixed budget",
                 epochs={"paper": 200, "small": 300, "tiny": 600},  # fixed budgets: the changed labels are fit late
                 models={"paper": ["alexnet-small", "inception-small"], "small": ["mlp-1x512", "mlp-3x512"],
                         "tiny": ["mlp-1x512", "mlp-3x512"]},
                 section=section, fixed_budget=True)
def rows(model: str):
    """One run per label noise level."""
    for noise in NOISE:
        yield f"label noise {noise:g}", {"label_noise": noise}, {"label_noise": noise}
