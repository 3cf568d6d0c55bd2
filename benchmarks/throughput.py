"""Training throughput (images/s) of rethinkgen's trainer against two baselines, on CIFAR-shaped data.

Three ways to train the same network (``create_model(name, (3, 28, 28), 10)``, SGD with momentum 0.9,
batch size 128) on random 3x32x32 uint8 images with 10 classes:

* trainer   - ``rethinkgen.engine.trainer.train``: the dataset lives on the device as one tensor, and preprocessing
              and augmentation (random 28x28 crop + flip) run as a few batched tensor ops per batch. Its
              ``images_per_second`` counts training time only, not the per-epoch evaluation.
* reference - the loop of typical public reproductions: a ``torch.utils.data.Dataset`` whose
              ``__getitem__`` converts, crops, flips and standardizes one image at a time, fed through a
              ``DataLoader(batch_size=128, shuffle=True, num_workers=0)``.
* bare      - forward/backward/step over a list of ready float batches made before timing: no data
              handling at all, the upper bound any loop can reach.

trainer/reference shows what batching the data pipeline buys; trainer/bare shows how much of the
remaining time the trainer spends outside the network itself. Each measurement is warmed up first and
uses the same number of images and the default torch thread count; the methods are measured in
interleaved rounds and each keeps its best round, so that a burst of load from other processes on the
machine does not decide a ratio.

Run: ``python benchmarks/throughput.py`` (about 3-4 minutes on 2 CPU cores), ``--quick`` for a smoke test.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rethinkgen.config import RunConfig
from rethinkgen.data.cifar import write_batch
from rethinkgen.engine.trainer import train
from rethinkgen.models import create_model, default_lr

BATCH = 128
CROP = 28
TEST_IMAGES = 500
TARGET_VS_REFERENCE = 1.5  # trainer / reference, with augmentation, mlp-1x512
TARGET_VS_BARE = 0.9       # trainer / bare, without augmentation


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    u = platform.uname()
    return (f"machine: {cpu} | {u.system} {u.release} {u.machine} | cpu_count={os.cpu_count()} | "
            f"python {platform.python_version()} | torch {torch.__version__} | "
            f"torch.get_num_threads()={torch.get_num_threads()}")


def write_cifar(directory: Path, n_train: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random CIFAR-10-shaped python batches (5 training batches + test batch); returns the training arrays."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n_train)
    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        write_batch(directory / f"data_batch_{i}", x[part], y[part])
    write_batch(directory / "test_batch", rng.integers(0, 256, (TEST_IMAGES, 3, 32, 32), dtype=np.uint8),
                rng.integers(0, 10, TEST_IMAGES))
    with open(directory / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, handle)
    return x, y


# ---------------------------------------------------------------- 1. the trainer
def trainer_speed(model: str, augment: bool, n: int, epochs: int, data_dir: Path, runs_dir: Path) -> float:
    config = RunConfig(dataset="cifar10", data_dir=str(data_dir), subset=n, test_subset=100, model=model,
                       epochs=epochs, batch_size=BATCH, augment=("crop", "flip") if augment else (),
                       eval_batch_size=1024, device="cpu")
    result = train(config, runs_dir, progress=False)
    assert result.summary["status"] == "complete", result.summary
    return result.summary["images_per_second"]


# ---------------------------------------------------------------- 2. the per-sample reference loop
class PerSampleCifar(torch.utils.data.Dataset):
    """uint8 HWC images, transformed one at a time as torchvision-style pipelines do."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, augment: bool):
        self.images, self.labels, self.augment = images_hwc, labels, augment

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        image = torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div(255)  # ToTensor
        if self.augment:  # RandomCrop(28) + RandomHorizontalFlip()
            top, left = np.random.randint(0, 32 - CROP + 1, size=2)
            image = image[:, top:top + CROP, left:left + CROP]
            if np.random.rand() < 0.5:
                image = image.flip(-1)
        else:  # CenterCrop(28)
            image = image[:, 2:2 + CROP, 2:2 + CROP]
        std = image.std(correction=0).clamp(min=image.numel() ** -0.5)  # per-image standardization
        return (image - image.mean()) / std, int(self.labels[i])


def sgd_step(model, optimizer, x, y):
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def new_model(name: str):
    torch.manual_seed(0)
    model = create_model(name, (3, CROP, CROP), 10)
    return model, torch.optim.SGD(model.parameters(), lr=default_lr(name), momentum=0.9)


def reference_speed(model_name: str, augment: bool, x: np.ndarray, y: np.ndarray, epochs: int, warmup: int) -> float:
    model, optimizer = new_model(model_name)
    dataset = PerSampleCifar(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), y, augment)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=0)
    model.train()
    for step, (xb, yb) in enumerate(loader):  # warm-up
        if step >= warmup:
            break
        sgd_step(model, optimizer, xb, yb)
    started, images = time.perf_counter(), 0
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            sgd_step(model, optimizer, xb, yb)
            images += len(xb)
    return images / (time.perf_counter() - started)


# ---------------------------------------------------------------- 3. the bare limit
def bare_speed(model_name: str, n: int, epochs: int, warmup: int) -> float:
    """The model alone, stepping through ready batches (one epoch's worth, made before the clock starts)."""
    model, optimizer = new_model(model_name)
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.randn(BATCH, 3, CROP, CROP, generator=generator),
                torch.randint(0, 10, (BATCH,), generator=generator)) for _ in range(math.ceil(n / BATCH))]
    model.train()
    for x, y in batches[:warmup]:
        sgd_step(model, optimizer, x, y)
    started = time.perf_counter()
    for _ in range(epochs):
        for x, y in batches:
            sgd_step(model, optimizer, x, y)
    return epochs * len(batches) * BATCH / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = parser.parse_args()
    # model: (training images, epochs, warm-up batches); every round times each method on epochs x images
    sizes = {"mlp-1x512": (10_000, 3, 20), "alexnet-small": (1_024, 1, 3)}
    rounds = 3
    if args.quick:
        sizes, rounds = {"mlp-1x512": (1_000, 2, 3), "alexnet-small": (256, 1, 1)}, 1
    print(machine())
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} (other processes skew results)")
    print(f"data: random CIFAR-shaped uint8 3x32x32, 10 classes, centre/random crop to {CROP}x{CROP}; "
          f"batch size {BATCH}; best of {rounds} interleaved round(s)")
    for name, (n, epochs, _) in sizes.items():
        print(f"  {name}: {epochs} epoch(s) x {n:,} images = {epochs * n:,} timed images per measurement")
    print()

    best: dict[tuple, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "cifar"
        data_dir.mkdir()
        x_all, y_all = write_cifar(data_dir, max(n for n, _, _ in sizes.values()))
        for name, (n, epochs, warmup) in sizes.items():
            x, y = x_all[:n], y_all[:n]
            trainer_speed(name, True, min(n, 4 * BATCH), 1, data_dir, Path(tmp) / "warmup")
            for r in range(rounds):
                runs_dir = Path(tmp) / f"runs{r}"  # a fresh store, so the trainer does not reuse a finished run
                measured = {("bare", "none"): bare_speed(name, n, epochs, warmup)}
                for augment, label in ((False, "none"), (True, "crop+flip")):
                    measured["trainer", label] = trainer_speed(name, augment, n, epochs, data_dir, runs_dir)
                    measured["reference", label] = reference_speed(name, augment, x, y, epochs, warmup)
                print(f"{name:14s} round {r + 1}: " + ", ".join(
                    f"{method} {label} {speed:,.0f}" for (method, label), speed in measured.items()) + " images/s")
                for (method, label), speed in measured.items():
                    best[name, method, label] = max(speed, best.get((name, method, label), 0.0))
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    rows = [(name, label, best[name, "trainer", label], best[name, "reference", label], best[name, "bare", "none"])
            for name in sizes for label in ("none", "crop+flip")]
    print("\nratios (best of rounds):")
    verdicts = []
    for name, label, ours, ref, bare in rows:
        line = f"  {name:14s} augment={label:9s} trainer/reference = {ours / ref:5.2f}x"
        if name == "mlp-1x512" and label != "none":
            verdicts.append(ours / ref >= TARGET_VS_REFERENCE)
            line += f"  (target >= {TARGET_VS_REFERENCE}x: {'met' if verdicts[-1] else 'MISSED'})"
        print(line)
        if label == "none":
            verdicts.append(ours / bare >= TARGET_VS_BARE)
            print(f"  {name:14s} augment={label:9s} trainer/bare      = {ours / bare:5.2f}x"
                  f"  (target >= {TARGET_VS_BARE}x: {'met' if verdicts[-1] else 'MISSED'})")
    print(f"\ntargets: {sum(verdicts)} of {len(verdicts)} met\n")

    print("| model | augmentation | trainer (img/s) | reference (img/s) | bare limit (img/s) "
          "| trainer / reference | trainer / bare |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, label, ours, ref, bare in rows:
        vs_bare = f"{ours / bare:.2f}x" if label == "none" else "-"
        print(f"| {name} | {label} | {ours:,.0f} | {ref:,.0f} | {bare:,.0f} | {ours / ref:.2f}x | {vs_bare} |")


if __name__ == "__main__":
    main()
