"""Table 1: train and test accuracy with random crop and weight decay on and off, and on random labels."""

from __future__ import annotations

from pathlib import Path

from rethinkgen.experiments.presets.registry import WEIGHT_DECAY, register_preset
from rethinkgen.report import Run, Section, by_model_and_label, is_paper_data, mean_sd, status_of, yes_no

CROPPED = ("inception-small", "alexnet-small")  # the models the paper also trains with random crops
# the paper's: (model, random crop, weight decay, random labels) -> (train accuracy %, test accuracy %), CIFAR-10
TABLE1 = {
    ("inception-small", True, True, False): (100.0, 89.05),
    ("inception-small", True, False, False): (100.0, 89.31),
    ("inception-small", False, True, False): (100.0, 86.03),
    ("inception-small", False, False, False): (100.0, 85.75),
    ("inception-small", False, False, True): (100.0, 9.78),
    ("inception-small-nobn", False, True, False): (100.0, 83.00),
    ("inception-small-nobn", False, False, False): (100.0, 82.00),
    ("inception-small-nobn", False, False, True): (100.0, 10.12),
    ("alexnet-small", True, True, False): (99.90, 81.22),
    ("alexnet-small", True, False, False): (99.82, 79.66),
    ("alexnet-small", False, True, False): (100.0, 77.36),
    ("alexnet-small", False, False, False): (100.0, 76.07),
    ("alexnet-small", False, False, True): (99.82, 9.86),
    ("mlp-3x512", False, True, False): (100.0, 53.35),
    ("mlp-3x512", False, False, False): (100.0, 52.39),
    ("mlp-3x512", False, False, True): (100.0, 10.48),
    ("mlp-1x512", False, True, False): (99.80, 50.39),
    ("mlp-1x512", False, False, False): (100.0, 50.51),
    ("mlp-1x512", False, False, True): (99.34, 10.61),
}


def section(name: str, runs: list[Run], out: Path) -> Section:
    """One row per model and setting: accuracies (%), with the paper's on CIFAR-10 (see ``Preset.section``)."""
    paper_values = is_paper_data(runs)
    headers = ["model", "params", "random crop", "weight decay", "labels", "train acc", "test acc", "status"]
    headers += ["paper: train acc", "paper: test acc"] if paper_values else []
    rows = []
    for (model, _), group in by_model_and_label(runs).items():
        g = group[0].group
        row = [model, f"{group[0].summary.get('parameters', 0):,}", yes_no(g.get("crop")), yes_no(g.get("weight_decay")),
               "random" if g.get("random_labels") else "true", mean_sd([r.get("train_accuracy") for r in group], 2, 100),
               mean_sd([r.get("test_accuracy") for r in group], 2, 100), status_of(group)]
        if paper_values:
            value = TABLE1.get((model, g.get("crop"), g.get("weight_decay"), g.get("random_labels")))
            row += [f"{value[0]:.2f}", f"{value[1]:.2f}"] if value else ["-", "-"]
        rows.append(row)
    rows.sort(key=lambda r: r[0])
    return Section(f"Table 1: the effect of explicit regularizers ({name})",
                   "Accuracy (%) on the full training set (eval mode) and the test set when each run stops.",
                   [(headers, rows)])


@register_preset("table1", "Table 1: train and test accuracy with random crop and weight decay on and off, "
                 "and on random labels", epochs={"paper": 100, "small": 150, "tiny": 600},
                 models=["inception-small", "inception-small-nobn", "alexnet-small", "mlp-3x512", "mlp-1x512"],
                 section=section)
def rows(model: str):
    """Crop (for the conv nets) and weight decay on and off on true labels, then random labels."""
    for crop in [True, False] if model in CROPPED else [False]:
        for decay in (True, False):
            yield (f"crop {yes_no(crop)}, weight decay {yes_no(decay)}",
                   {"crop": crop, "weight_decay": decay, "random_labels": False},
                   {"augment": ["crop"] if crop else [], "weight_decay": WEIGHT_DECAY if decay else 0.0})
    yield ("fitting random labels", {"crop": False, "weight_decay": False, "random_labels": True},
           {"label_noise": 1.0})
