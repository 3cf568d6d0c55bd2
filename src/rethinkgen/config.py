"""One run's settings as plain data: defaults, validation, loading from YAML/JSON, and the run's hash.

Every field is a CLI flag of ``rethinkgen run`` (``label_noise`` is ``--label-noise``) and a key of a
``--config`` file. Where the paper is silent the default says what this project chose.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rethinkgen import registry
from rethinkgen.checks import integer, number
from rethinkgen.choices import AMP_MODES, AUGMENTATIONS, DATASETS, INPUTS, LABEL_NOISE_MODES, MEASURE_SETS, SWITCH_MODES
from rethinkgen.data import arrays as own_data, huggingface
from rethinkgen.errors import RethinkgenError, choice_error, shown
from rethinkgen.settings_file import read_mapping

# settings that change where data is read, which device computes, how many processes load it, only the
# order of floating-point operations, or what is measured afterwards, but not what a run is
NOT_HASHED = ("data_dir", "download", "device", "workers", "channels_last", "compile", "measures", "tensorboard")
CUDA_UNMEASURED = "the CUDA choice is unmeasured until benchmarks/gpu.py is run on a GPU"
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:[0-9]{1,4})?")
DEVICES = "auto, cpu, cuda, cuda:N (N a GPU number) or mps"
MAX_SEED = 2**63 - 1  # torch seeds its generators with a 64-bit integer
SEEDS = ("seed", "randomization_seed", "init_seed", "order_seed")
MAX_WORKERS = 64  # imagefolder decoder processes
MAX_IMAGE_SIZE = 4096  # imagefolder: the side images are decoded to (Inception V3 takes 299)


def _f(default, help: str, **extra):
    """A setting with its help text. ``hashed_at_default=False`` marks settings added after runs were
    already stored: left out of the run id while at their default (or at ``neutral``, the resolved value
    that computes what runs computed before the setting existed), so existing run folders keep their
    names. ``choices`` lists the allowed values; ``within=(low, high, low_open, high_open)`` the interval of a
    number, ``integer=(low, high)`` the range of a whole number (see ``rethinkgen.checks``)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class RunConfig:
    """One run's settings as plain data; no torch.

    Each field is one setting, with its default and meaning in the field's ``help`` metadata (listed on the
    Configuration page and by ``rethinkgen run --help``). ``validated()`` checks every value and returns a
    checked copy, ``resolved()`` fills in what ``auto`` values stand for, and ``run_id()`` names the run's
    folder by the hash of the settings that define the run.
    """

    # data
    dataset: str = _f("digits", "data source (see `rethinkgen list datasets`), the path of an .npz file of your own, or a "
                                "Hugging Face dataset: hf:OWNER/NAME or hf:PATH (pip install 'rethinkgen[hf]')")
    data_hash: Optional[str] = _f(None, "SHA-256 of your own data (an .npz file's bytes, or the arrays given to "
                                        "train(config, dataset=...)); filled in when the run is set up, and part of "
                                        "the run id", hashed_at_default=False)
    data_dir: Optional[str] = _f(None, "directory holding the dataset's files")
    download: bool = _f(False, "download the dataset's canonical files when they are missing")
    subset: Optional[int] = _f(None, "train on a stratified subset of this many training examples",
        integer=(1,))
    test_subset: Optional[int] = _f(None, "evaluate on a stratified subset of this many test examples",
        integer=(1,))
    image_size: Optional[int] = _f(None, "imagefolder only: decode each image to this size, shorter side resized "
                                         "and centre-cropped (default: 299, Inception V3's)", hashed_at_default=False,
        integer=(1, MAX_IMAGE_SIZE))
    workers: Optional[int] = _f(None, "imagefolder only: DataLoader worker processes that decode images "
                                      "(default: the CPU count, at most 8; 0 decodes in the training process)",
                                hashed_at_default=False,
        integer=(0, MAX_WORKERS))
    image_column: Optional[str] = _f(None, "Hugging Face datasets only: the column of images (default: the one "
                                           "column of images)", hashed_at_default=False)
    label_column: Optional[str] = _f(None, "Hugging Face datasets only: the column of labels (default: the one "
                                           "ClassLabel column, or 'label')", hashed_at_default=False)
    train_split: Optional[str] = _f(None, "Hugging Face datasets only: the training split (default: train)",
                                    hashed_at_default=False)
    test_split: Optional[str] = _f(None, "Hugging Face datasets only: the test split (default: test, else "
                                         "validation)", hashed_at_default=False)
    # randomization
    label_noise: float = _f(0.0, "probability p in [0, 1] that a training label is replaced by a uniform class",
        within=(0, 1, False, False))
    label_noise_mode: str = _f("uniform", "how a replaced label is drawn: uniform (over all K classes, as the paper: "
                               "about p/K of them stay right) or other (always a different class)",
                               hashed_at_default=False, choices=LABEL_NOISE_MODES)
    inputs: str = _f("original", "input randomization: " + ", ".join(INPUTS))
    corrupt_test_labels: bool = _f(False, "apply the label noise to the test labels too (the paper does not)")
    # model
    model: str = _f("mlp-1x512", "model name (see `rethinkgen list models`) or package.module:factory")
    dropout: float = _f(0.0, "dropout probability in the model's head (0 = off, as in the paper's CIFAR runs)",
        within=(0, 1, False, True))
    crop: str = _f("auto", "centre crop: auto (32x32 to 28x28, as the paper), none, or a size")
    # optimization
    epochs: int = _f(20, "number of epochs (the paper gives none)",
        integer=(1,))
    batch_size: int = _f(128, "minibatch size (the paper gives none; 128 is the usual choice)",
        integer=(1,))
    lr: Optional[float] = _f(None, "initial learning rate (default: the paper's, 0.1 Inception, 0.01 others)",
        within=(0, math.inf, True, False))
    lr_decay: float = _f(0.95, "learning rate factor applied after every epoch (App. A: 0.95)",
        within=(0, 1, True, False))
    momentum: float = _f(0.9, "SGD momentum (App. A: 0.9)",
        within=(0, 1, False, True))
    weight_decay: float = _f(0.0, "L2 weight decay coefficient (0 = off, as in the randomization runs)",
        within=(0, math.inf))
    augment: list = _f((), "augmentations applied per batch: " + ", ".join(AUGMENTATIONS))
    rotate_degrees: float = _f(25.0, "maximum rotation of the 'rotate' augmentation (App. E: 25)",
        within=(0, 180, False, False))
    pad: int = _f(4, "padding of the 'crop' augmentation when there is no centre crop to randomize",
        integer=(0,))
    # fitting and logging
    fit_threshold: float = _f(1.0, "training accuracy at which a run counts as fitted",
        within=(0, 1, True, False))
    stop_at_fit: bool = _f(False, "stop as soon as the run is fitted instead of running all epochs")
    tensorboard: bool = _f(False, "write TensorBoard event files in the run's folder (pip install "
                                  "'rethinkgen[tensorboard]'); not part of the run id")
    log_every: int = _f(20, "steps between records of the running mean training loss",
        integer=(1,))
    eval_batch_size: int = _f(1024, "batch size for evaluation (does not change results)",
        integer=(1,))
    measures: str = _f("cheap", "complexity measures computed when the run completes: cheap (norms, margin, "
                       "optimization), all (adds flatness), none", hashed_at_default=False)
    # seeds and device
    seed: int = _f(0, "seed for everything not seeded separately below",
        integer=(0, MAX_SEED))
    randomization_seed: Optional[int] = _f(None, "seed of the label and input randomization (default: seed)",
        integer=(0, MAX_SEED))
    init_seed: Optional[int] = _f(None, "seed of the model's initial weights and dropout (default: seed)",
        integer=(0, MAX_SEED))
    order_seed: Optional[int] = _f(None, "seed of the data order and augmentation (default: seed)",
        integer=(0, MAX_SEED))
    device: str = _f("auto", "auto, cpu, cuda or cuda:N")
    # GPU switches (see engine/speedups.py); auto is off on the CPU
    amp: str = _f("auto", "bf16 autocast: off, bf16, or auto (bf16 on a CUDA GPU that supports it, else off; "
                  + CUDA_UNMEASURED + "); part of the run id when bf16", hashed_at_default=False, neutral="off",
                  choices=AMP_MODES)
    channels_last: str = _f("auto", "channels_last memory format: off, on, or auto (on for models with "
                            "convolutions on a CUDA GPU, else off; " + CUDA_UNMEASURED + ")",
                            hashed_at_default=False, choices=SWITCH_MODES)
    compile: str = _f("auto", "torch.compile the model: off, on, or auto (off: compiling costs tens of seconds; "
                      + CUDA_UNMEASURED + ")", hashed_at_default=False, choices=SWITCH_MODES)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_mapping(cls, values: dict, where: str = "") -> "RunConfig":
        """A validated config from a mapping of setting names to values (a spec file, a saved config.json).

        Args:
            values: setting names and their values; an unknown name is refused.
            where: a prefix for error messages that says where the values came from (e.g. a file name).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RethinkgenError(
                f"{where}unknown config key {shown(unknown[0])}; allowed: {', '.join(sorted(known))}")
        return cls(**values).validated()

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict | None = None) -> "RunConfig":
        """Read a YAML or JSON file (JSON is YAML), then apply ``overrides``.

        Args:
            path: the file.
            overrides: settings that replace the file's.
        """
        values = setting_names(read_mapping(path, "config file"), f"config file {path}")
        return cls.from_mapping({**values, **(overrides or {})}, where=f"{path}: ")

    def replace(self, **changes: object) -> "RunConfig":
        """A validated copy with some settings changed.

        Args:
            **changes: setting names and their new values.
        """
        return dataclasses.replace(self, **changes).validated()

    # ------------------------------------------------------------------ validation
    def validated(self) -> "RunConfig":
        """A copy with each value in its field's type (an int for a float, a comma list for a list), after
        checking every constraint; ``self`` is left as it is. Raises RethinkgenError naming the bad value."""
        hints = typing.get_type_hints(type(self))
        coerced = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if "choices" in f.metadata and isinstance(value, bool):
                value = "on" if value else "off"  # YAML reads an unquoted on/off as a boolean
            coerced[f.name] = _coerce(f.name, value, hints[f.name])
        config = dataclasses.replace(self, **coerced)
        config.check()
        return config

    def check(self) -> None:
        """Check every setting against its constraints (the ``choices`` and ``within`` of its field, and the
        rules below); change nothing. Raises RethinkgenError naming the bad value."""
        if self.dataset not in DATASETS and not own_data.is_own(self.dataset):
            raise choice_error("dataset", self.dataset, (*DATASETS, "PATH.npz", "hf:OWNER/NAME", "hf:PATH"))
        own_data.check_data_hash(self.dataset, self.data_hash)
        huggingface.check(self.dataset, huggingface.options_of(self))
        if self.inputs not in INPUTS:
            raise choice_error("input randomization", self.inputs, INPUTS)
        registry.check_name(self.model)
        for f in dataclasses.fields(self):
            if "choices" in f.metadata and getattr(self, f.name) not in f.metadata["choices"]:
                raise choice_error(f.name, getattr(self, f.name), f.metadata["choices"])
        if self.measures not in MEASURE_SETS:
            raise choice_error("measure set", self.measures, MEASURE_SETS)
        for i, name in enumerate(self.augment):
            if name not in AUGMENTATIONS:
                raise choice_error("augmentation", name, AUGMENTATIONS)
            if name in self.augment[:i]:
                raise RethinkgenError(f"augmentation {shown(name)} is given twice in augment; give it once")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None and "within" in f.metadata:
                number(f.name, value, *f.metadata["within"])
            elif value is not None and "integer" in f.metadata:
                integer(f.name, value, *f.metadata["integer"])
        if self.image_size is not None and self.dataset != "imagefolder":
            raise RethinkgenError(f"image_size {self.image_size} applies only to the imagefolder dataset, "
                                  f"not {shown(self.dataset)}")
        if self.crop not in ("auto", "none") and not (re.fullmatch(r"[0-9]{1,9}", self.crop) and int(self.crop) > 0):
            raise RethinkgenError(f"crop {shown(self.crop)} must be auto, none, or a positive integer size")
        check_device(self.device)

    def resolved(self) -> "RunConfig":
        """Fill in the defaults that depend on other settings (seeds, the model's learning rate, amp on
        this machine's device: bf16 changes the numbers, so ``auto`` is decided before the run id is taken)."""
        return dataclasses.replace(
            self, amp=_resolved_amp(self.amp, self.device), data_hash=self._resolved_hash(),
            randomization_seed=self.seed if self.randomization_seed is None else self.randomization_seed,
            init_seed=self.seed if self.init_seed is None else self.init_seed,
            order_seed=self.seed if self.order_seed is None else self.order_seed,
            lr=registry.default_lr(self.model) if self.lr is None else self.lr)

    def _resolved_hash(self) -> str | None:
        if huggingface.is_hf(self.dataset):
            return huggingface.resolved_hash(self.dataset, huggingface.options_of(self), self.data_hash)
        return own_data.resolved_hash(self.dataset, self.data_hash)

    # ------------------------------------------------------------------ identity
    def to_dict(self) -> dict:
        """The settings as a JSON-ready dict (``config.json``); ``from_mapping`` reads it back."""
        values = dataclasses.asdict(self)
        values["augment"] = list(values["augment"])
        return values

    def run_id(self) -> str:
        """A short hash of the resolved settings that define the run: the name of its folder."""
        defaults = {f.name: f.metadata.get("neutral", f.default) for f in dataclasses.fields(self)
                    if not f.metadata.get("hashed_at_default", True)}
        values = {k: v for k, v in self.resolved().to_dict().items()
                  if k not in NOT_HASHED and not (k in defaults and v == defaults[k])}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def _resolved_amp(amp: str, device: str) -> str:
    """``amp`` with ``auto`` decided for this machine's device."""
    if amp != "auto":
        return amp
    # torch only to look for a CUDA GPU, when a run's id is taken: keeps config (and CLI start-up) free of torch
    from rethinkgen.engine.speedups import resolve_amp

    return resolve_amp(amp, device)


def check_device(name: str) -> str:
    """Refuse a device name torch would not parse (``cuda:abc``); return it."""
    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        raise RethinkgenError(f"unknown device {shown(name)}; allowed: {DEVICES}")
    return name


def setting_names(values: dict, where: str) -> dict:
    """``values`` with each key spelled as a RunConfig field (``label-noise`` is ``label_noise``); refuses a
    mapping that gives one setting under both spellings. ``where`` names the mapping in the error."""
    named = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name in named:
            raise RethinkgenError(f"{where}: {shown(name)} is given twice (as {shown(named[name][0])} and "
                                  f"{shown(key)}); give it once")
        named[name] = (key, value)
    return {name: value for name, (_, value) in named.items()}


def _coerce(name: str, value, annotation):
    """Accept what YAML or the CLI produce (an int for a float, a comma list), reject the rest."""
    optional = typing.get_origin(annotation) is typing.Union
    base = typing.get_args(annotation)[0] if optional else annotation
    if value is None:
        if optional:
            return None
        raise RethinkgenError(f"{name} must not be empty")
    if base is bool:
        if isinstance(value, bool):
            return value
        raise RethinkgenError(f"{name} {shown(value)} must be true or false")
    if base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise RethinkgenError(f"{name} {shown(value)} must be an integer")
    if base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise RethinkgenError(f"{name} {shown(value)} must be a number")
    if base is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise RethinkgenError(f"{name} {shown(value)} must be a list of names")
    if base is str:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
        raise RethinkgenError(f"{name} {shown(value)} must be a string")
    return value
