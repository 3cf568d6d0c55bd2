"""Training data on the device: the training device itself, and the dataset held there.

An image folder too large for the device (ImageNet) is streamed from disk instead
(``rethinkgen.engine.streaming.StreamedData``); both offer the trainer the same ``batches`` and ``evaluate``.
"""

from __future__ import annotations

import torch

from rethinkgen import data
from rethinkgen.config import RunConfig, check_device
from rethinkgen.data.augment import settings_for, training_input
from rethinkgen.data.preprocess import preprocess
from rethinkgen.data.randomize import RandomizationRecord, randomize
from rethinkgen.engine.evaluate import metrics_from_logits, predict
from rethinkgen.engine.speedups import Speedups
from rethinkgen.engine.streaming import StreamedData
from rethinkgen.errors import RethinkgenError


def resolve_device(name: str) -> torch.device:
    """The torch device for a ``--device`` value (``auto``: a CUDA GPU when one is visible, else the CPU).

    Args:
        name: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises:
        RethinkgenError: the device is asked for but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(check_device(name))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RethinkgenError(f"device {name!r} requested but no CUDA GPU is available; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise RethinkgenError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} CUDA "
                              f"GPU(s): cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RethinkgenError(f"device {name!r} requested but MPS is not available; use --device cpu")
    return device


class DeviceData:
    """The dataset on the training device: uint8 images for augmentation, preprocessed floats for the rest.

    Args:
        clean: the dataset before randomization (its labels are the originals of the changed ones).
        randomized: the dataset the run trains and tests on.
        record: the randomization record (which training labels changed).
        config: the run's settings (crop, augmentation).
        device: the training device.
    """

    def __init__(self, clean, randomized, record: RandomizationRecord, config: RunConfig, device):
        self.augment = settings_for(config, randomized.image_shape[1])
        self.crop_size = self.augment.crop_size
        self.x_train_u8 = torch.from_numpy(randomized.x_train).to(device)
        self.x_train = preprocess(self.x_train_u8, self.crop_size)
        self.y_train = torch.from_numpy(randomized.y_train).to(device)
        self.x_test = preprocess(torch.from_numpy(randomized.x_test).to(device), self.crop_size)
        self.y_test = torch.from_numpy(randomized.y_test).to(device)
        self.changed = torch.from_numpy(record.changed).to(device)
        self.y_changed_original = torch.from_numpy(clean.y_train[record.changed]).to(device)
        self.input_shape = tuple(self.x_train.shape[1:])
        self.num_classes = randomized.num_classes
        self.num_train = len(self.y_train)
        # the full-precision training logits of the last evaluation: the measures of a run that completes
        # right after it take their margins from these instead of another pass over the training set
        self.last_train_logits = None

    def batch(self, index: torch.Tensor, generator: torch.Generator, part: slice = slice(None)) -> torch.Tensor:
        """The training inputs of ``index[part]``; augmentation is drawn for all of ``index``, so that every
        process of a distributed run draws the same numbers and keeps its own part."""
        if not self.augment.names:
            return self.x_train[index[part]]
        return training_input(self.x_train_u8[index], self.augment, generator)[part]

    def batches(self, order: torch.Tensor, generator: torch.Generator, batch_size: int, part=None):
        """(inputs, labels, global batch size) of one epoch, in ``order``, augmented with ``generator``;
        ``part(n)`` is this process's slice of a global batch of n (a distributed run), else all of it."""
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            mine = part(len(index)) if part else slice(None)
            yield self.batch(index, generator, mine), self.y_train[index[mine]], len(index)

    def evaluate(self, model, batch_size: int, speedups: Speedups = Speedups()) -> dict:
        """The epoch-end metrics of ``model`` (see ``engine.evaluate.metrics_from_logits``), evaluated
        ``batch_size`` images at a time with ``speedups``."""
        train_logits = predict(model, self.x_train, batch_size, speedups)
        self.last_train_logits = None if speedups.amp else train_logits
        return metrics_from_logits(train_logits, predict(model, self.x_test, batch_size, speedups), self)


def training_data(clean, randomized, record: RandomizationRecord, config: RunConfig, device):
    """The dataset on the device (``DeviceData``), or, for an image folder, streamed from disk
    (``StreamedData``); the arguments are ``DeviceData``'s."""
    if isinstance(randomized, data.ImageFiles):
        return StreamedData(clean, randomized, record, config, device)
    return DeviceData(clean, randomized, record, config, device)


def prepare_data(config: RunConfig, dataset: data.Dataset | None = None):
    """Load (unless ``dataset``, your arrays, is given), subset and randomize the dataset; return (clean,
    randomized, record)."""
    if dataset is None:
        dataset = data.load_for_run(config.dataset, config.data_dir, config.download, config.image_size,
                                    config.data_hash, data.huggingface.options_of(config))
    if config.subset is not None or config.test_subset is not None:
        dataset = dataset.subset(config.subset, seed=config.randomization_seed, n_test=config.test_subset)
    randomized, record = randomize(dataset, config.label_noise, config.inputs, config.randomization_seed,
                                   config.corrupt_test_labels, config.label_noise_mode)
    return dataset, randomized, record
