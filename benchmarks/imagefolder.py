"""Image-folder throughput: decoding JPEGs through the DataLoader, and training Inception V3 on them.

Writes a folder of ImageNet-sized JPEGs (500x375, smooth random content so that they compress like
photographs, about 30-60 KB each) into a temporary directory, then measures, side by side in one run:

* loader - images/s of ``StreamedData``'s DataLoader decoding and resizing them (Pillow, with JPEG draft
           mode) to 299x299 and 75x75, with 0, 1 and 2 worker processes; no network.
* train  - images/s of a whole ``rethinkgen run`` (streamed data, augmentation, forward, backward, SGD)
           with ``inception-v3`` at 75x75 (the smallest input torchvision's Inception V3 takes) and
           ``mlp-1x512`` for comparison, from the run's own ``images_per_second`` (training time only).
* bare   - images/s of Inception V3's forward/backward/step alone on ready tensors, at 75x75 and 299x299.

The Inception V3 measurements need torchvision (``pip install 'rethinkgen[vision]'``) and are skipped
without it. Each figure is the best of ``--rounds`` rounds, since other load moves single measurements.

Run: ``python benchmarks/imagefolder.py`` (a few minutes on 2 CPU cores), ``--quick`` for a smoke test.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rethinkgen.config import RunConfig
from rethinkgen.data.imagefolder import load_imagefolder, write_imagefolder
from rethinkgen.data.randomize import randomize
from rethinkgen.engine.streaming import StreamedData
from rethinkgen.engine.trainer import train
from rethinkgen.models import create_model

CLASSES = tuple(f"n{k:08d}" for k in range(10))
WIDTH, HEIGHT = 500, 375  # a typical ImageNet photograph


def write_photographs(root: Path, n_train: int, n_test: int) -> None:
    """Smooth random images (upsampled noise) in class folders, as JPEGs of about ImageNet's file size."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_test)):
        coarse = rng.integers(0, 256, (n, 3, HEIGHT // 25, WIDTH // 25), dtype=np.uint8)
        images = coarse.repeat(25, axis=2).repeat(25, axis=3)
        images = np.clip(images.astype(np.int16) + rng.integers(-20, 20, images.shape), 0, 255).astype(np.uint8)
        write_imagefolder(root, split, images, np.arange(n) % len(CLASSES), CLASSES, quality=90)


def loader_rate(root: Path, size: int, workers: int, rounds: int) -> float:
    files = load_imagefolder(root, image_size=size)
    noisy, record = randomize(files)
    config = RunConfig(dataset="imagefolder", workers=workers).validated()
    streamed = StreamedData(files, noisy, record, config, torch.device("cpu"))
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        count = sum(len(labels) for _, labels in streamed._loader("train", 32, list(range(len(files.y_train)))))
        best = max(best, count / (time.perf_counter() - started))
    return best


def bare_rate(model_name: str, size: int, batch: int, steps: int, rounds: int) -> float:
    torch.manual_seed(0)
    model = create_model(model_name, (3, size, size), len(CLASSES))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, len(CLASSES), (batch,))
    model.train()
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        best = max(best, batch * steps / (time.perf_counter() - started))
    return best


def trainer_rate(root: Path, runs: Path, model: str, size: int, crop: int, workers: int, epochs: int) -> float:
    config = RunConfig(dataset="imagefolder", data_dir=str(root), image_size=size, crop=str(crop), model=model,
                       epochs=epochs, batch_size=32, augment=("crop", "flip"), workers=workers, lr_decay=1.0)
    result = train(config, runs / f"{model}-{workers}", progress=False)
    return max(row["images_per_second"] for row in result.metrics)  # training time only, best epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few images and one round: a smoke test")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n_train, n_test, rounds = (32, 8, 1) if args.quick else (256, 32, args.rounds)
    try:
        import torchvision  # noqa: F401
        vision = True
    except Exception:
        vision = False
    u = platform.uname()
    print(f"machine: {u.machine} | cpu_count={os.cpu_count()} | torch {torch.__version__} | "
          f"{torch.get_num_threads()} threads | torchvision {'yes' if vision else 'no (Inception V3 skipped)'}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "folder"
        write_photographs(root, n_train, n_test)
        size_kb = sum(p.stat().st_size for p in root.rglob("*.JPEG")) / (n_train + n_test) / 1024
        print(f"{n_train} train JPEGs of {WIDTH}x{HEIGHT}, {size_kb:.0f} KB each on average\n")
        print("| measurement | size | workers | images/s |\n|---|---|---:|---:|")
        for size in (299, 75):
            for workers in (0, 1, 2):
                print(f"| loader: decode + resize | {size}x{size} | {workers} | "
                      f"{loader_rate(root, size, workers, rounds):,.0f} |", flush=True)
        epochs = 1 if args.quick else 2
        print(f"| trainer: mlp-1x512, crop+flip | 86 -> 75 | 2 | "
              f"{trainer_rate(root, Path(tmp) / 'runs', 'mlp-1x512', 86, 75, 2, epochs):,.0f} |", flush=True)
        if vision:
            print(f"| trainer: inception-v3, crop+flip | 86 -> 75 | 2 | "
                  f"{trainer_rate(root, Path(tmp) / 'runs', 'inception-v3', 86, 75, 2, epochs):,.1f} |", flush=True)
            for size, steps in ((75, 2 if args.quick else 4), (299, 1)):
                print(f"| bare: inception-v3 forward/backward/step, batch 32 | {size}x{size} | - | "
                      f"{bare_rate('inception-v3', size, 32, steps, rounds):,.1f} |", flush=True)


if __name__ == "__main__":
    main()
