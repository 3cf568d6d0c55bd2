"""Table 2: an ImageNet-style image folder, Inception V3, top-1 and top-5 accuracy with data
augmentation, dropout and weight decay on and off, and on random labels.

It runs on an image folder at every scale and takes most of the paper's unstated settings from the
TensorFlow Inception package it says it reused (App. A): batch 32, the rate falling x0.94 every 2
epochs, weight decay 4e-5, dropout 0.2. The initial rate is ``inception-v3``'s default for SGD with
momentum, 0.01, not that package's RMSProp rate 0.045 (unstable with SGD; see models/inception_v3.py).
Its "data aug" is random crop, flip and colour jitter, the closest of this project's batched
augmentations to that package's distortions. It trains a fixed budget (no stop at fit), as the table
reports accuracies after training.
"""

from __future__ import annotations

import math
from pathlib import Path

from rethinkgen.experiments.presets.registry import register_preset
from rethinkgen.report import Run, Section, by_model_and_label, mean_sd, status_of, yes_no

# (random labels, data aug, dropout, weight decay) of each row
ROWS = [(False, True, True, True), (False, True, False, False), (False, False, False, True),
        (False, False, False, False), (True, False, True, True), (True, False, False, True),
        (True, False, False, False)]
BATCH_SIZE = 32                 # the TensorFlow Inception package's batch per worker
STEPS_PER_EPOCH = math.ceil(1281167 / BATCH_SIZE)  # ILSVRC 2012's training images
WEIGHT_DECAY = 4e-5             # the TensorFlow Inception package's default for Inception V3
DROPOUT = 0.2                   # that package keeps 0.8 of the activations
AUGMENT = ["crop", "flip", "jitter"]
EVAL_BATCH_SIZE = 256           # 1024 Inception V3 evaluations of 299x299 images need more memory than most GPUs
CLASSES = 1000
# the paper's (ImageNet): row -> (top-1 train, top-5 train, top-1 test, top-5 test, best top-1 test, best
# top-5 test), in %, as printed; the best test accuracies (in parentheses there) are given for two rows only
TABLE2 = {
    (False, True, True, True): (92.18, 99.21, 77.84, 93.92, None, None),
    (False, True, False, False): (92.33, 99.17, 72.95, 90.43, None, None),
    (False, False, False, True): (90.60, 100.0, 67.18, 86.44, 72.57, 91.31),
    (False, False, False, False): (99.53, 100.0, 59.80, 80.38, 63.16, 84.49),
    (True, False, True, True): (91.18, 97.95, 0.09, 0.49, None, None),
    (True, False, False, True): (87.81, 96.15, 0.12, 0.50, None, None),
    (True, False, False, False): (95.20, 99.14, 0.11, 0.56, None, None),
}


def is_imagenet(runs: list[Run]) -> bool:
    """Whole image folders of 1000 classes: the only runs Table 2's numbers are printed beside."""
    return bool(runs) and all(run.config.get("dataset") == "imagefolder" and not run.config.get("subset")
                              and not run.config.get("test_subset")
                              and run.summary.get("num_classes") == CLASSES for run in runs)


def _with_best(final: list[Run], key: str) -> str:
    """Final accuracy (%) with the best seen during training in parentheses, as Table 2 prints it."""
    value = mean_sd([r.get(key) for r in final], 2, 100)
    best = mean_sd([r.get(f"best_{key}") for r in final], 2, 100)
    return value if value == "-" else f"{value} ({best})"


def _paper_row(row: tuple) -> list[str]:
    """The paper's four accuracies of ``row`` (with the best test ones where printed)."""
    value = TABLE2.get(row)
    if not value:
        return ["-"] * 4
    return [f"{value[0]:.2f}", f"{value[1]:.2f}", f"{value[2]:.2f}" + (f" ({value[4]:.2f})" if value[4] else ""),
            f"{value[3]:.2f}" + (f" ({value[5]:.2f})" if value[5] else "")]


def section(name: str, runs: list[Run], out: Path) -> Section:
    """One row per model and setting: top-1 and top-5 accuracies (%), with the paper's on ImageNet (see
    ``Preset.section``)."""
    paper_values = is_imagenet(runs)
    headers = ["model", "labels", "data aug", "dropout", "weight decay", "top-1 train", "top-5 train",
               "top-1 test (best)", "top-5 test (best)", "epochs", "status"]
    headers += ["paper: top-1 train", "paper: top-5 train", "paper: top-1 test", "paper: top-5 test"] \
        if paper_values else []
    rows = []
    for (model, _), group in by_model_and_label(runs).items():
        g = group[0].group
        rows.append([model, "random" if g.get("random_labels") else "true", yes_no(g.get("augmentation")),
                     yes_no(g.get("dropout")), yes_no(g.get("weight_decay")),
                     mean_sd([r.get("train_accuracy") for r in group], 2, 100),
                     mean_sd([r.get("train_top5_accuracy") for r in group], 2, 100),
                     _with_best(group, "test_accuracy"), _with_best(group, "test_top5_accuracy"),
                     mean_sd([r.get("epochs_completed") for r in group], 0), status_of(group)]
                    + (_paper_row((g.get("random_labels"), g.get("augmentation"), g.get("dropout"),
                                   g.get("weight_decay"))) if paper_values else []))
    return Section(f"Table 2: ImageNet-style data, top-1 and top-5 accuracy ({name})",
                   "Accuracy (%) on the full training set (eval mode, un-augmented) and the test set after the "
                   "epoch budget, with the best test accuracy seen at any epoch end in parentheses. The paper's "
                   "numbers stand beside them only for a whole 1000-class folder (ILSVRC 2012).",
                   [(headers, rows)])


@register_preset(
    "table2", "Table 2: ImageNet-style folder, Inception V3, top-1 and top-5 accuracy with data augmentation, "
    "dropout and weight decay on and off, and on random labels",
    epochs={"paper": 250, "small": 60, "tiny": 30},  # Figure 2a: 10M steps of 32 = 250 epochs
    models=["inception-v3"], section=section, fixed_budget=True, dataset="imagefolder",
    settings={"batch_size": BATCH_SIZE, "eval_batch_size": EVAL_BATCH_SIZE},
    lr_decay=0.94 ** 0.5,  # x0.94 every 2 epochs, per epoch
    paper_steps=STEPS_PER_EPOCH,
    folder_images={"paper": (342, 299), "small": (128, 112), "tiny": (86, 75)})  # (decoded size, centre crop)
def rows(model: str):
    """The seven rows of the table."""
    for random_labels, augmentation, dropout, decay in ROWS:
        yield (f"{'random' if random_labels else 'true'} labels, aug {yes_no(augmentation)}, "
               f"dropout {yes_no(dropout)}, weight decay {yes_no(decay)}",
               {"random_labels": random_labels, "augmentation": augmentation, "dropout": dropout,
                "weight_decay": decay},
               {"label_noise": 1.0 if random_labels else 0.0, "augment": AUGMENT if augmentation else [],
                "dropout": DROPOUT if dropout else 0.0, "weight_decay": WEIGHT_DECAY if decay else 0.0})
