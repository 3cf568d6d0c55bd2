"""An image folder streamed from disk: the one place where images are loaded one at a time.

ImageNet does not fit on a device, so its images are decoded by a DataLoader's worker processes (Pillow,
resize, the per-image input randomization) and arrive as uint8 batches; augmentation and
standardization then run batched on the training device, exactly as for a device-resident dataset.
``StreamedData`` offers the trainer the same ``batches`` and ``evaluate`` as ``DeviceData``.

The data order and the augmentation come from the trainer's seeded generator, and each image's
randomization from (seed, split, index), so the number of workers never changes a result.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from rethinkgen.data.augment import settings_for, training_input
from rethinkgen.data.imagefolder import ImageFiles
from rethinkgen.data.preprocess import preprocess
from rethinkgen.engine.evaluate import fraction, memorization, predict, top5_correct
from rethinkgen.engine.speedups import Speedups
from rethinkgen.errors import RethinkgenError

MAX_DEFAULT_WORKERS = 8  # enough to keep a GPU busy with small images; more only adds processes


def default_workers() -> int:
    """DataLoader workers that decode an image folder by default: the CPU count, at most ``MAX_DEFAULT_WORKERS``."""
    return min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1)


class ImageSplit(Dataset):
    """One split of an image folder as a torch Dataset: (uint8 [3, S, S] image, label) by index."""

    def __init__(self, files: ImageFiles, split: str):
        self.files, self.split = files, split
        self.labels = files.y_train if split == "train" else files.y_test

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return torch.from_numpy(self.files.image(self.split, index)), int(self.labels[index])


class Order(Sampler):
    """The indices of the next pass, set before each one: a persistent loader keeps its workers between epochs."""

    def __init__(self, n: int):
        self.order = list(range(n))

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


class StreamedData:
    """Batches and epoch-end metrics of an image folder, decoded by ``workers`` processes."""

    def __init__(self, clean: ImageFiles, randomized: ImageFiles, record, config, device):
        self.files, self.device = randomized, device
        self.augment = settings_for(config, randomized.image_size)
        self.crop_size = self.augment.crop_size
        self.workers = default_workers() if config.workers is None else config.workers
        size = self.crop_size or randomized.image_size
        self.input_shape = (3, size, size)
        self.num_classes = randomized.num_classes
        self.num_train = len(randomized.y_train)
        self.changed = torch.from_numpy(record.changed)
        self.y_changed_original = torch.from_numpy(clean.y_train[record.changed])
        self._loaders: dict[tuple[str, int], DataLoader] = {}

    def _loader(self, split: str, batch_size: int, order: list[int] | None = None):
        """uint8 images and labels on the device, in ``order`` (else in file order).

        One DataLoader per split and batch size, kept with its worker processes for the whole run, so
        that small folders do not pay for starting the workers three times an epoch.
        """
        key = (split, batch_size)
        if key not in self._loaders:
            dataset = ImageSplit(self.files, split)
            self._loaders[key] = DataLoader(
                dataset, batch_size=batch_size, sampler=Order(len(dataset)), num_workers=self.workers,
                persistent_workers=self.workers > 0, pin_memory=self.device.type == "cuda",
                generator=torch.Generator())  # its own generator: the global one seeds dropout
        loader = self._loaders[key]
        loader.sampler.order = list(range(len(loader.dataset))) if order is None else order
        try:
            for images, labels in loader:
                yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        except RethinkgenError as error:
            # a worker's error arrives wrapped in its traceback; keep only its own one-line message
            last = str(error).strip().splitlines()[-1]
            raise RethinkgenError(last.partition("RethinkgenError: ")[2] or last) from None

    def batches(self, order: torch.Tensor, generator: torch.Generator, batch_size: int, part=None):
        """(inputs, labels, batch size) of one epoch, in ``order``, augmented with ``generator`` on the device.
        One process only (``part`` is for DeviceData's distributed runs; the trainer refuses them here)."""
        for images, labels in self._loader("train", batch_size, order.tolist()):
            inputs = training_input(images, self.augment, generator) if self.augment.names \
                else preprocess(images, self.crop_size)
            yield inputs, labels, len(labels)

    @torch.no_grad()
    def evaluate(self, model, batch_size: int, speedups: Speedups = Speedups()) -> dict:
        """The same metrics as ``DeviceData.evaluate``, accumulated over batches of the un-augmented images."""
        result, train_guesses = {}, []
        for split in ("train", "test"):
            loss, top1, top5, count = torch.zeros((), dtype=torch.float64, device=self.device), 0, 0, 0
            for images, labels in self._loader(split, batch_size):
                logits = predict(model, preprocess(images, self.crop_size), len(images), speedups, plan=False)
                loss += F.cross_entropy(logits, labels, reduction="sum").double()
                guesses = logits.argmax(1)
                top1 += (guesses == labels).sum().item()
                correct5 = top5_correct(logits, labels)
                top5 = None if correct5 is None else top5 + correct5
                count += len(labels)
                if split == "train":
                    train_guesses.append((guesses.cpu(), labels.cpu()))
            result.update({f"{split}_loss": (loss / max(count, 1)).item(), f"{split}_accuracy": fraction(top1, count),
                           f"{split}_top5_accuracy": fraction(top5, count)})
        guesses, labels = (torch.cat(column) for column in zip(*train_guesses))
        return {**result, **memorization(guesses, labels, self.changed, self.y_changed_original)}
