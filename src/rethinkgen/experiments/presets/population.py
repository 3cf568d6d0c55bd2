"""The ``measures`` preset: a varied population (models x label noise x weight decay x seeds) whose
complexity measures are tested against the generalization gap (``rethinkgen measures``)."""

from __future__ import annotations

from pathlib import Path

from rethinkgen.experiments.presets.registry import WEIGHT_DECAY, register_preset
from rethinkgen.report import Run, Section, by_model_and_label, mean_sd, status_of

NOISE = [0.0, 0.5, 1.0]
WEIGHT_DECAYS = [0.0, 10 * WEIGHT_DECAY]  # the paper's 5e-4 barely acts in the few hundred steps of tiny runs


def section(name: str, runs: list[Run], out: Path) -> Section:
    """One row per model and setting; the measures themselves have a section of their own (see
    ``Preset.section``)."""
    headers = ["model", "label noise", "weight decay", "train acc", "test acc", "gap", "steps to fit", "status"]
    rows = [[model, f"{group[0].group.get('label_noise'):g}", f"{group[0].group.get('weight_decay'):g}",
             mean_sd([r.get("train_accuracy") for r in group]), mean_sd([r.get("test_accuracy") for r in group]),
             mean_sd([r.get("generalization_gap") for r in group]), mean_sd([r.get("steps_to_fit") for r in group], 0),
             status_of(group)] for (model, _), group in by_model_and_label(runs).items()]
    return Section(f"The measures population ({name})", "Several seeds are shown as mean ± standard deviation (n).",
                   [(headers, rows)])


@register_preset("measures", "A varied population (models x label noise x weight decay x seeds) whose complexity "
                 "measures are tested against the generalization gap (rethinkgen measures)",
                 epochs={"paper": 100, "small": 150, "tiny": 600},
                 # the fastest to fit; add --models alexnet-small inception-small
                 models=["mlp-1x512", "mlp-3x512"], section=section, seeds=(0, 1))
def rows(model: str):
    """Every label noise level with and without weight decay."""
    for noise in NOISE:
        for decay in WEIGHT_DECAYS:
            yield (f"label noise {noise:g}, weight decay {decay:g}", {"label_noise": noise, "weight_decay": decay},
                   {"label_noise": noise, "weight_decay": decay})
