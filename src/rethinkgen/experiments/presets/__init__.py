"""One preset per experiment of the paper, and two of the experiments that followed it, at three scales.

- ``paper``: the paper's data (CIFAR-10 by default) and settings, meant for a GPU;
- ``small``: 5,000 training and 1,000 test examples, for a patient CPU;
- ``tiny``: 256 training and 256 test examples, for a laptop CPU in minutes.

Choices the paper leaves open (see the README for all of them): every run but Figure 2b's stops when
it fits its training set (training accuracy >= ``fit_threshold``, 1.0 by default) or at its epoch
budget; "time to fit" (Figure 1b) is the number of steps to that point, relative to the same model
with no label noise. The learning rate falls x0.95 per epoch of 391 steps (CIFAR-10 at batch 128);
at smaller scales the per-epoch factor is adjusted so the rate falls the same amount per *step*.

``table2`` (ImageNet, Inception V3) runs on an image folder at every scale and takes most of the
paper's unstated settings from the TensorFlow Inception package it says it reused (App. A): batch 32,
the rate falling x0.94 every 2 epochs, weight decay 4e-5, dropout 0.2. The initial rate is
``inception-v3``'s default for SGD with momentum, 0.01, not that package's RMSProp rate 0.045 (unstable
with SGD; see models/inception_v3.py). Its "data aug" is random crop, flip and colour jitter, the
closest of this project's batched augmentations to that package's distortions. It trains a fixed
budget (no stop at fit), as the table reports accuracies after training.

``memorization`` (Arpit et al. 2017) and ``double-descent`` (Nakkiran et al. 2019, model size) train
a fixed budget with label noise: the changed labels are memorized long after the kept ones are fit.
Their networks depend on the scale: the MLPs at ``tiny``/``small``, the conv nets at ``paper``;
``double-descent`` sweeps the width of ``mlp-1xW`` or ``cnn5-K`` at a constant rate.
"""

from __future__ import annotations

import math
import re

from rethinkgen.choices import MODEL_FAMILIES
from rethinkgen.config import RunConfig
from rethinkgen.errors import RethinkgenError, choice_error
from rethinkgen.experiments.sweep import DATASET_SHAPES, Sweep, SweepRun

SCALES = {"paper": (None, None), "small": (5000, 1000), "tiny": (256, 256)}  # (train, test) examples
PAPER_STEPS_PER_EPOCH = 391     # CIFAR-10's 50,000 images at batch 128
PAPER_LR_DECAY = 0.95           # App. A
LONG_LR_DECAY = 0.999           # App. E, for random labels with cropping or augmentation
WEIGHT_DECAY = 5e-4             # "the default coefficient", which the paper does not give
EPOCHS = {  # epoch budget per preset and scale
    "figure1a": {"paper": 64, "small": 150, "tiny": 600},     # Figure 1a runs to 25k steps = 64 epochs
    "figure1bc": {"paper": 100, "small": 150, "tiny": 600},
    "table1": {"paper": 100, "small": 150, "tiny": 600},
    "table4": {"paper": 200, "small": 300, "tiny": 300},      # "trained longer" (App. E)
    "figure2b": {"paper": 52, "small": 60, "tiny": 100},      # Figure 2b runs to 20k steps = 52 epochs
    "measures": {"paper": 100, "small": 150, "tiny": 600},    # a population for the complexity measures
    "table2": {"paper": 250, "small": 60, "tiny": 30},        # Figure 2a: 10M steps of 32 = 250 epochs
    "memorization": {"paper": 200, "small": 300, "tiny": 600},  # fixed budgets: the changed labels are fit late
    "double-descent": {"paper": 500, "small": 500, "tiny": 400},
}
DEFAULT_MODELS = {
    "figure1a": ["inception-small"],
    "figure1bc": ["inception-small", "alexnet-small", "mlp-1x512"],
    "table1": ["inception-small", "inception-small-nobn", "alexnet-small", "mlp-3x512", "mlp-1x512"],
    "table4": ["inception-small", "alexnet-small", "mlp-3x512", "mlp-1x512"],
    "figure2b": ["inception-small", "inception-small-nobn"],
    "measures": ["mlp-1x512", "mlp-3x512"],  # the fastest to fit; add --models alexnet-small inception-small
    "table2": ["inception-v3"],
    # presets whose networks differ with the scale: {scale: models}
    "memorization": {"paper": ["alexnet-small", "inception-small"], "small": ["mlp-1x512", "mlp-3x512"],
                     "tiny": ["mlp-1x512", "mlp-3x512"]},
    "double-descent": {"paper": [f"cnn5-{k}" for k in (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64)],
                       "small": [f"mlp-1x{w}" for w in (2, 4, 8, 12, 16, 24, 32, 64, 128, 256, 512, 1024)],
                       "tiny": [f"mlp-1x{w}" for w in (2, 4, 6, 8, 10, 12, 16, 24, 32, 64, 128, 256, 512)]},
}
DESCRIPTIONS = {
    "figure1a": "Figure 1a: training loss against steps on true labels, random labels, shuffled pixels, "
                "random pixels and Gaussian inputs",
    "figure1bc": "Figures 1b and 1c: time to fit relative to no noise, and test error after fitting, "
                 "at label noise 0, 0.1, ..., 1",
    "table1": "Table 1: train and test accuracy with random crop and weight decay on and off, and on random labels",
    "table4": "Table 4: fitting random labels with weight decay, random cropping, or flip + rotation",
    "figure2b": "Figure 2b: train and test accuracy against steps, with and without batch norm",
    "measures": "A varied population (models x label noise x weight decay x seeds) whose complexity measures are "
                "tested against the generalization gap (rethinkgen measures)",
    "table2": "Table 2: ImageNet-style folder, Inception V3, top-1 and top-5 accuracy with data augmentation, "
              "dropout and weight decay on and off, and on random labels",
    "memorization": "Memorization dynamics (Arpit et al. 2017): accuracy on the kept and on the changed labels "
                    "against steps at label noise 0.2, 0.4, 0.6, 0.8, for a fixed budget",
    "double-descent": "Model-wise and epoch-wise double descent (Nakkiran et al. 2019): test error against "
                      "width and against epochs at label noise 0.2, for a fixed budget",
}
FIGURE1A_SETTINGS = [("true labels", 0.0, "original"), ("random labels", 1.0, "original"),
                     ("shuffled pixels", 0.0, "shuffled-pixels"), ("random pixels", 0.0, "random-pixels"),
                     ("gaussian", 0.0, "gaussian")]
# the demo adds half-corrupted labels to Figure 1a's settings
DEMO_SETTINGS = FIGURE1A_SETTINGS[:1] + [("label noise 0.5", 0.5, "original")] + FIGURE1A_SETTINGS[1:]
NOISE_LEVELS = [round(0.1 * i, 1) for i in range(11)]
MEASURES_NOISE = [0.0, 0.5, 1.0]
MEASURES_WEIGHT_DECAY = [0.0, 10 * WEIGHT_DECAY]  # the paper's 5e-4 barely acts in the few hundred steps of tiny runs
DEFAULT_SEEDS = {"measures": [0, 1]}  # the other presets: [0]
MEMORIZATION_NOISE = [0.2, 0.4, 0.6, 0.8]
DOUBLE_DESCENT_NOISE = 0.2
DOUBLE_DESCENT_LR = 0.05         # constant (no decay): memorizing the noise late in the budget needs a rate that stays
# (train, test) examples where a preset departs from SCALES: at 256 digits the model-size peak of double
# descent is lost in the noise of 256 test images; on all 1,347 digits (1,500 > 1,347) it is clear
SCALE_SIZES = {"double-descent": {"tiny": (1500, 500)}}
FIXED_BUDGET = ("figure2b", "table2", "memorization", "double-descent")  # presets whose runs never stop at fit
# Table 2's rows: (random labels, data aug, dropout, weight decay)
TABLE2_ROWS = [(False, True, True, True), (False, True, False, False), (False, False, False, True),
               (False, False, False, False), (True, False, True, True), (True, False, False, True),
               (True, False, False, False)]
TABLE2_DATASET = "imagefolder"
TABLE2_IMAGE = {"paper": (342, 299), "small": (128, 112), "tiny": (86, 75)}  # (decoded size, centre crop)
TABLE2_BATCH_SIZE = 32          # the TensorFlow Inception package's batch per worker
TABLE2_LR_DECAY = 0.94 ** 0.5   # x0.94 every 2 epochs, per epoch
TABLE2_STEPS_PER_EPOCH = math.ceil(1281167 / TABLE2_BATCH_SIZE)  # ILSVRC 2012's training images
TABLE2_WEIGHT_DECAY = 4e-5      # the TensorFlow Inception package's default for Inception V3
TABLE2_DROPOUT = 0.2            # that package keeps 0.8 of the activations
TABLE2_AUGMENT = ["crop", "flip", "jitter"]
TABLE2_EVAL_BATCH_SIZE = 256    # 1024 Inception V3 evaluations of 299x299 images need more memory than most GPUs


def lr_decay_for(scale_decay: float, n_train: int, batch_size: int, paper_steps: int = PAPER_STEPS_PER_EPOCH) -> float:
    """The per-epoch factor that makes the rate fall as much per step as ``scale_decay`` per ``paper_steps``."""
    return scale_decay ** (math.ceil(n_train / batch_size) / paper_steps)


def default_models(preset: str, scale: str) -> list[str]:
    """The models ``preset`` trains at ``scale`` unless told otherwise."""
    models = DEFAULT_MODELS[preset]
    return models[scale] if isinstance(models, dict) else models


def model_width(model: str) -> int | None:
    """The width of a model of a sized family (W of ``mlp-DxW``, K of ``cnn5-K``); None for other models."""
    for pattern, _ in MODEL_FAMILIES.values():
        match = re.fullmatch(pattern, model)
        if match:
            return int(match.groups()[-1])
    return None


def build(preset: str, dataset: str | None = None, models: list[str] | None = None, seeds: list[int] | None = None,
          scale: str = "tiny", data_dir: str | None = None, name: str | None = None,
          figure1a_settings: list = FIGURE1A_SETTINGS, **overrides) -> Sweep:
    """The sweep that reproduces ``preset`` at ``scale``; ``overrides`` are settings applied to every run."""
    if preset not in EPOCHS:
        raise choice_error("preset", preset, EPOCHS)
    if scale not in SCALES:
        raise choice_error("scale", scale, SCALES)
    defaults = default_models(preset, scale)
    if dataset is None:  # an empty name is refused as an unknown dataset, not taken for the default
        dataset = TABLE2_DATASET if preset == "table2" else "cifar10" if scale == "paper" else "digits"
    models = models or defaults
    seeds = seeds or DEFAULT_SEEDS.get(preset, [0])
    train_size, test_size = SCALE_SIZES.get(preset, {}).get(scale, SCALES[scale])
    full_train, full_test, values = DATASET_SHAPES.get(dataset, (None, None, None))
    if dataset == "imagefolder":
        full_train = full_test = None  # a folder of any size: its subsets are checked against it before training
    image_size = {64: 8, 784: 28, 2352: 32}.get(values, 32)
    subset = train_size if train_size and (full_train is None or train_size < full_train) else None
    test_subset = test_size if test_size and (full_test is None or test_size < full_test) else None
    if "subset" in overrides:
        subset = overrides["subset"]
    n_train = subset or full_train or PAPER_STEPS_PER_EPOCH * 128
    batch_size = overrides.get("batch_size", TABLE2_BATCH_SIZE if preset == "table2" else 128)
    steps_per_epoch = math.ceil(n_train / batch_size)
    paper_steps = TABLE2_STEPS_PER_EPOCH if preset == "table2" else PAPER_STEPS_PER_EPOCH
    preset_settings = {}
    if preset == "double-descent":
        preset_settings = {"lr": DOUBLE_DESCENT_LR, "lr_decay": 1.0}
    if preset == "table2":
        preset_settings = {"batch_size": batch_size, "eval_batch_size": TABLE2_EVAL_BATCH_SIZE}
        if dataset == "imagefolder":
            size, crop = TABLE2_IMAGE[scale]
            preset_settings.update(image_size=size, crop=str(crop))

    def config(model: str, seed: int, long: bool = False, **settings) -> RunConfig:
        decay = TABLE2_LR_DECAY if preset == "table2" else LONG_LR_DECAY if long else PAPER_LR_DECAY
        if "crop" in settings.get("augment", ()) and image_size != 32:
            # pad-and-crop shifts by up to a quarter of the 32 -> 28 crop's relative range: 4 pixels at 32
            settings["pad"] = max(1, image_size // 8)
        values = dict(dataset=dataset, data_dir=data_dir, subset=subset, test_subset=test_subset, model=model,
                      seed=seed, epochs=EPOCHS[preset][scale],
                      stop_at_fit=preset not in FIXED_BUDGET, log_every=max(1, min(20, steps_per_epoch)),
                      lr_decay=decay if scale == "paper" else lr_decay_for(decay, n_train, batch_size, paper_steps))
        values.update(preset_settings)
        return RunConfig.from_mapping({**values, **settings, **overrides})

    runs = []
    for model in models:
        for seed in seeds:
            for label, group, settings in _rows(preset, model, figure1a_settings):
                runs.append(SweepRun(label, config(model, seed, **settings),
                                     {"model": model, "seed": seed, **group}))
    if not runs:
        raise RethinkgenError(f"preset {preset} with models {', '.join(models)} has no runs; "
                              f"its models are {', '.join(defaults)}")
    return Sweep(name or f"{preset}-{dataset}-{scale}", runs, preset=preset, scale=scale)


def _rows(preset: str, model: str, figure1a_settings: list):
    """(label, group facts for the report, settings) for every run of ``preset`` on ``model``."""
    if preset == "figure1a":
        for label, noise, inputs in figure1a_settings:
            yield label, {"setting": label}, {"label_noise": noise, "inputs": inputs}
    elif preset == "figure1bc":
        for noise in NOISE_LEVELS:
            yield f"label noise {noise:g}", {"label_noise": noise}, {"label_noise": noise}
    elif preset == "table1":
        crops = [True, False] if model in ("inception-small", "alexnet-small") else [False]
        for crop in crops:
            for decay in (True, False):
                yield (f"crop {'yes' if crop else 'no'}, weight decay {'yes' if decay else 'no'}",
                       {"crop": crop, "weight_decay": decay, "random_labels": False},
                       {"augment": ["crop"] if crop else [], "weight_decay": WEIGHT_DECAY if decay else 0.0})
        yield ("fitting random labels", {"crop": False, "weight_decay": False, "random_labels": True},
               {"label_noise": 1.0})
    elif preset == "table4":
        yield "weight decay", {"regularizer": "weight decay"}, {"label_noise": 1.0, "weight_decay": WEIGHT_DECAY}
        if model == "inception-small":
            yield ("random cropping", {"regularizer": "random cropping"},
                   {"label_noise": 1.0, "augment": ["crop"], "long": True})
            yield ("augmentation", {"regularizer": "augmentation"},
                   {"label_noise": 1.0, "augment": ["flip", "rotate"], "long": True})
    elif preset == "figure2b":
        yield model, {"batch_norm": model == "inception-small"}, {}
    elif preset == "measures":
        for noise in MEASURES_NOISE:
            for decay in MEASURES_WEIGHT_DECAY:
                yield (f"label noise {noise:g}, weight decay {decay:g}", {"label_noise": noise, "weight_decay": decay},
                       {"label_noise": noise, "weight_decay": decay})
    elif preset == "memorization":
        for noise in MEMORIZATION_NOISE:
            yield f"label noise {noise:g}", {"label_noise": noise}, {"label_noise": noise}
    elif preset == "double-descent":
        width = model_width(model)
        yield (f"width {width}" if width else model, {"width": width, "label_noise": DOUBLE_DESCENT_NOISE},
               {"label_noise": DOUBLE_DESCENT_NOISE})
    elif preset == "table2":
        for random_labels, augmentation, dropout, decay in TABLE2_ROWS:
            yield (f"{'random' if random_labels else 'true'} labels, aug {'yes' if augmentation else 'no'}, "
                   f"dropout {'yes' if dropout else 'no'}, weight decay {'yes' if decay else 'no'}",
                   {"random_labels": random_labels, "augmentation": augmentation, "dropout": dropout,
                    "weight_decay": decay},
                   {"label_noise": 1.0 if random_labels else 0.0, "augment": TABLE2_AUGMENT if augmentation else [],
                    "dropout": TABLE2_DROPOUT if dropout else 0.0,
                    "weight_decay": TABLE2_WEIGHT_DECAY if decay else 0.0})
