"""Helpers shared by the test modules."""

import pickle
import textwrap
from pathlib import Path

import numpy as np

from rethinkgen.data.cifar import write_batch
from rethinkgen.data.idx import write_idx

# a model module whose network fails as soon as it trains (it evaluates fine): a run that must fail
FAILING_MODEL_SOURCE = textwrap.dedent("""
    from torch import nn

    class TrainsBadly(nn.Module):
        def __init__(self, input_shape, num_classes):
            super().__init__()
            self.linear = nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], num_classes)

        def forward(self, x):
            if self.training:
                raise RuntimeError("boom in training")
            return self.linear(x.flatten(1))

    def build(input_shape, num_classes):
        return TrainsBadly(input_shape, num_classes)
""")


def interrupt_after(epochs: int):
    """An ``on_epoch_end`` hook that stops training as Ctrl-C would once a run has recorded ``epochs``
    epochs (its checkpoint holds them; the next epoch never starts)."""
    def hook(run, epoch):
        if epoch >= epochs:
            raise KeyboardInterrupt
    return hook


# ------------------------------------------------------------------ dataset files in their real formats
IDX_STEMS = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def idx_arrays(n_train=20, n_test=8, h=5, w=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, size=(n_train, h, w), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(n_test, h, w), dtype=np.uint8),
        "y_test": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }


def write_idx_dir(directory: Path, arrays: dict, gz: bool) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, stem in IDX_STEMS.items():
        paths[key] = directory / (stem + (".gz" if gz else ""))
        write_idx(paths[key], arrays[key])
    return paths


def cifar_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def write_cifar10(folder: Path, per_batch=4, n_test=5):
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"name{k}" for k in range(10)]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [n.encode() for n in names], b"num_vis": 3072}, handle)
    xs, ys = [], []
    for i in range(1, 6):
        x = cifar_images(per_batch, seed=i)
        y = [(i + j) % 10 for j in range(per_batch)]
        write_batch(folder / f"data_batch_{i}", x, y)
        xs.append(x)
        ys += y
    x_test = cifar_images(n_test, seed=99)
    y_test = [(3 * j) % 10 for j in range(n_test)]
    write_batch(folder / "test_batch", x_test, y_test)
    return names, np.concatenate(xs), np.array(ys), x_test, np.array(y_test)
