"""Table 4 (App. E): fitting random labels with weight decay, random cropping, or flip + rotation."""

from __future__ import annotations

from pathlib import Path

from rethinkgen.experiments.presets.registry import WEIGHT_DECAY, register_preset
from rethinkgen.report import Run, Section, by_model_and_label, is_paper_data, mean_sd, status_of

# the paper's: (model, regularizer) -> training accuracy on random labels, as printed (CIFAR-10)
TABLE4 = {
    ("inception-small", "weight decay"): "100%",
    ("alexnet-small", "weight decay"): "failed to converge",
    ("mlp-3x512", "weight decay"): "100%",
    ("mlp-1x512", "weight decay"): "99.21%",
    ("inception-small", "random cropping"): "99.93%",
    ("inception-small", "augmentation"): "99.28%",
}


def section(name: str, runs: list[Run], out: Path) -> Section:
    """One row per model and regularizer: eval-mode and online training accuracy (%) on random labels (see
    ``Preset.section``)."""
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
            row.append(TABLE4.get((model, regularizer), "-"))
        rows.append(row)
    return Section(f"Table 4: fitting random labels with explicit regularizers ({name})",
                   "Training accuracy (%) on random labels. The paper's figure for augmented runs is the online "
                   "accuracy of the minibatches seen while training, given here beside the eval-mode accuracy.",
                   [(headers, rows)])


@register_preset("table4", "Table 4: fitting random labels with weight decay, random cropping, or flip + rotation",
                 epochs={"paper": 200, "small": 300, "tiny": 300},  # "trained longer" (App. E)
                 models=["inception-small", "alexnet-small", "mlp-3x512", "mlp-1x512"], section=section)
def rows(model: str):
    """Weight decay for every model; random cropping and flip + rotation (with App. E's slower rate
    decay) for the small Inception."""
    yield "weight decay", {"regularizer": "weight decay"}, {"label_noise": 1.0, "weight_decay": WEIGHT_DECAY}
    if model == "inception-small":
        yield ("random cropping", {"regularizer": "random cropping"},
               {"label_noise": 1.0, "augment": ["crop"], "long": True})
        yield ("augmentation", {"regularizer": "augmentation"},
               {"label_noise": 1.0, "augment": ["flip", "rotate"], "long": True})
