"""The registry of presets, and the sweep each one builds at a scale.

A preset is one experiment: the runs it trains (its rows, for each model and seed), its settings at
each scale, and its section of the report with the paper's numbers beside the measured ones. Each lives
in a module of its own in this package and registers itself with ``register_preset``, as models register
with ``register_model``.

The scales:

- ``paper``: the paper's data (CIFAR-10 by default) and settings, meant for a GPU;
- ``small``: 5,000 training and 1,000 test examples, for a patient CPU;
- ``tiny``: 256 training and 256 test examples, for a laptop CPU in minutes.

Choices the paper leaves open (the presets page of the documentation gives them all): every run of a
preset without a fixed budget stops when it fits its training set (training accuracy >=
``fit_threshold``, 1.0 by default) or at its epoch budget. The learning rate falls x0.95 per epoch of 391
steps (CIFAR-10 at batch 128); at smaller scales the per-epoch factor is adjusted so the rate falls the
same amount per *step*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

from rethinkgen.config import RunConfig
from rethinkgen.errors import RethinkgenError, choice_error, shown
from rethinkgen.experiments.sweep import DATASET_SHAPES, Sweep, SweepRun

SCALES = {"paper": (None, None), "small": (5000, 1000), "tiny": (256, 256)}  # (train, test) examples
PAPER_STEPS_PER_EPOCH = 391     # CIFAR-10's 50,000 images at batch 128
PAPER_LR_DECAY = 0.95           # App. A
LONG_LR_DECAY = 0.999           # App. E, for random labels with cropping or augmentation
WEIGHT_DECAY = 5e-4             # "the default coefficient", which the paper does not give
BATCH_SIZE = 128

Row = tuple[str, dict, dict]    # (label, group facts for the report, settings) of one run
Rows = Callable[[str], Iterator[Row]]


@dataclass(frozen=True)
class Preset:
    """One experiment of the paper (or one that followed it).

    Args:
        name: what ``sweep --preset`` calls it.
        description: one line for ``rethinkgen list presets``.
        epochs: the epoch budget at each scale.
        models: the models it trains at each scale unless told otherwise.
        rows: ``rows(model)`` yields a (label, group, settings) triple per run of one model and seed: the
            label names the run in tables and figures, the group holds the facts its section sorts by,
            the settings are the run's own (a setting ``long=True`` makes the rate fall as App. E's).
        section: ``section(name, runs, out)`` makes its section of the report from its sweep's name, its
            runs (``rethinkgen.report.Run``) and the folder for figures.
        seeds: the seeds unless told otherwise.
        fixed_budget: True if its runs train all their epochs (no stop at fit).
        settings: settings of all its runs, before each row's and the user's.
        sizes: (train, test) examples at the scales where it departs from ``SCALES``.
        dataset: its data at every scale (None: CIFAR-10 at ``paper``, digits below).
        lr_decay: the rate's fall per epoch of ``paper_steps`` steps.
        paper_steps: the steps of one epoch of the paper's data at the paper's batch size.
        folder_images: (decoded size, centre crop) at each scale, for image-folder data.
    """

    name: str
    description: str
    epochs: dict[str, int]
    models: dict[str, list[str]]
    rows: Rows
    section: Callable
    seeds: tuple[int, ...] = (0,)
    fixed_budget: bool = False
    settings: dict = field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    dataset: str | None = None
    lr_decay: float = PAPER_LR_DECAY
    paper_steps: int = PAPER_STEPS_PER_EPOCH
    folder_images: dict[str, tuple[int, int]] | None = None


PRESETS: dict[str, Preset] = {}


def register_preset(name: str, description: str, epochs: dict[str, int], models: list[str] | dict[str, list[str]],
                    section: Callable, **facts: object):
    """Decorator that registers a rows function (see ``Preset.rows``) as the preset ``name``.

    Args:
        name: what ``sweep --preset`` calls it.
        description: one line for ``rethinkgen list presets``.
        epochs: the epoch budget at each scale.
        models: a list (the same at every scale) or a dict of lists by scale.
        section: ``section(name, runs, out)``, its section of the report (see ``Preset``).
        facts: any other field of ``Preset``.
    """
    def decorate(rows: Rows) -> Rows:
        by_scale = models if isinstance(models, dict) else {scale: list(models) for scale in SCALES}
        for what, given in (("epochs", epochs), ("models", by_scale)):
            if set(given) != set(SCALES):
                raise RethinkgenError(f"preset {shown(name)}: {what} must give every scale ({', '.join(SCALES)}), "
                                      f"not {', '.join(map(str, given)) or 'none'}")
        PRESETS[name] = Preset(name, description, epochs, by_scale, rows, section, **facts)
        return rows
    return decorate


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a one-line error naming the presets otherwise."""
    if name not in PRESETS:
        raise choice_error("preset", name, PRESETS)
    return PRESETS[name]


def lr_decay_for(scale_decay: float, n_train: int, batch_size: int, paper_steps: int = PAPER_STEPS_PER_EPOCH) -> float:
    """The per-epoch factor that makes the rate fall as much per step as ``scale_decay`` per ``paper_steps``."""
    return scale_decay ** (math.ceil(n_train / batch_size) / paper_steps)


def _sizes(preset: Preset, dataset: str, scale: str) -> tuple[int | None, int | None, int | None, int]:
    """(subset, test subset, the dataset's training examples, image side) of ``preset`` on ``dataset`` at
    ``scale``: a scale's size applies only where it is below the dataset's (None: all of it, or unknown)."""
    train_size, test_size = preset.sizes.get(scale, SCALES[scale])
    full_train, full_test, values = DATASET_SHAPES.get(dataset, (None, None, None))
    if dataset == "imagefolder":
        full_train = full_test = None  # a folder of any size: its subsets are checked against it before training
    subset = train_size if train_size and (full_train is None or train_size < full_train) else None
    test_subset = test_size if test_size and (full_test is None or test_size < full_test) else None
    return subset, test_subset, full_train, {64: 8, 784: 28, 2352: 32}.get(values, 32)


def build(preset: str, dataset: str | None = None, models: list[str] | None = None, seeds: list[int] | None = None,
          scale: str = "tiny", data_dir: str | None = None, name: str | None = None, rows: Rows | None = None,
          **overrides: object) -> Sweep:
    """The sweep that reproduces ``preset`` at ``scale``.

    Args:
        preset: the preset's name (``rethinkgen list presets``).
        dataset: the data (None: the preset's, else CIFAR-10 at ``paper`` and digits below).
        models: the models (None: the preset's at this scale).
        seeds: the seeds (None: the preset's).
        scale: ``paper``, ``small`` or ``tiny``.
        data_dir: the folder holding the dataset's files.
        name: the sweep's name (None: ``PRESET-DATASET-SCALE``).
        rows: the runs of one model and seed (None: the preset's; the demo adds a setting to Figure 1a's).
        overrides: settings applied to every run, over the preset's.
    """
    spec = get_preset(preset)
    if scale not in SCALES:
        raise choice_error("scale", scale, SCALES)
    if dataset is None:  # an empty name is refused as an unknown dataset, not taken for the default
        dataset = spec.dataset or ("cifar10" if scale == "paper" else "digits")
    models = models or spec.models[scale]
    subset, test_subset, full_train, image_size = _sizes(spec, dataset, scale)
    subset = overrides.get("subset", subset)  # the user's subset, None included (all), wins
    n_train = subset or full_train or PAPER_STEPS_PER_EPOCH * BATCH_SIZE
    batch_size = overrides.get("batch_size", spec.settings.get("batch_size", BATCH_SIZE))
    steps_per_epoch = math.ceil(n_train / batch_size)
    preset_settings = dict(spec.settings)
    if spec.folder_images and dataset == "imagefolder":
        size, crop = spec.folder_images[scale]
        preset_settings.update(image_size=size, crop=str(crop))

    def config(model: str, seed: int, long: bool = False, **settings) -> RunConfig:
        decay = LONG_LR_DECAY if long else spec.lr_decay
        if "crop" in settings.get("augment", ()) and image_size != 32:
            # pad-and-crop shifts by up to a quarter of the 32 -> 28 crop's relative range: 4 pixels at 32
            settings["pad"] = max(1, image_size // 8)
        values = dict(dataset=dataset, data_dir=data_dir, subset=subset, test_subset=test_subset, model=model,
                      seed=seed, epochs=spec.epochs[scale], stop_at_fit=not spec.fixed_budget,
                      log_every=max(1, min(20, steps_per_epoch)),
                      lr_decay=decay if scale == "paper" else lr_decay_for(decay, n_train, batch_size, spec.paper_steps))
        values.update(preset_settings)
        return RunConfig.from_mapping({**values, **settings, **overrides})

    runs = [SweepRun(label, config(model, seed, **settings), {"model": model, "seed": seed, **group})
            for model in models for seed in seeds or spec.seeds for label, group, settings in (rows or spec.rows)(model)]
    if not runs:
        raise RethinkgenError(f"preset {preset} with models {', '.join(models)} has no runs; "
                              f"its models are {', '.join(spec.models[scale])}")
    return Sweep(name or f"{preset}-{dataset}-{scale}", runs, preset=preset, scale=scale)
