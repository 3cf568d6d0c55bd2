"""Hugging Face decoding and caching, and TensorBoard's cost per epoch.

Writes a Hugging Face ``DatasetDict`` of 28x28 grayscale PNG images (class templates plus noise, 10
classes) with ``save_to_disk`` into a temporary directory, then measures:

* decode - ``load_hf`` the first time: open the folder, decode every image, check, hash, write the cache;
* cached - ``load_hf`` again with an empty in-process memo: open the folder (fingerprints), read the cached
           ``.npz``, check and hash it;
* board  - a run of ``mlp-1x512`` with ``tensorboard: true``: the seconds its TensorBoard writer takes per
           epoch (every step row and epoch scalar, flushed), beside the epoch's own seconds.

Needs the hf and tensorboard extras. Run: ``OMP_NUM_THREADS=1 python benchmarks/hf_tensorboard.py``
(``--train 20000 --test 4000`` by default; a minute or two on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def build(folder: Path, n_train: int, n_test: int) -> None:
    import datasets
    from PIL import Image

    rng = np.random.default_rng(0)
    templates = rng.uniform(0, 255, (10, 28, 28))
    parts = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        images = np.clip(templates[labels] + rng.normal(0, 40, (n, 28, 28)), 0, 255).astype(np.uint8)
        parts[split] = datasets.Dataset.from_dict(
            {"image": [Image.fromarray(x) for x in images], "label": labels.tolist()},
            features=datasets.Features({"image": datasets.Image(),
                                        "label": datasets.ClassLabel(names=[f"c{k}" for k in range(10)])}))
    datasets.DatasetDict(parts).save_to_disk(str(folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--test", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.update(HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp / "hf"), RETHINKGEN_HF_CACHE=str(tmp / "cache"))
        from rethinkgen.data import huggingface

        build(tmp / "saved", args.train, args.test)
        name = f"hf:{tmp / 'saved'}"
        started = time.perf_counter()
        data, _ = huggingface.load_hf(name)
        print(f"decode: {time.perf_counter() - started:.2f} s for {data.describe()}")
        huggingface._hashes.clear()
        started = time.perf_counter()
        huggingface.load_hf(name)
        print(f"cached: {time.perf_counter() - started:.2f} s")
        board_seconds(name, tmp / "runs", args.epochs)


def board_seconds(name: str, runs: Path, epochs: int) -> None:
    from rethinkgen.config import RunConfig
    from rethinkgen.engine import tensorboard
    from rethinkgen.engine.trainer import train

    spent = []
    original = tensorboard.BoardWriter.epoch

    def timed(self, row, step_rows):
        started = time.perf_counter()
        original(self, row, step_rows)
        spent.append(time.perf_counter() - started)

    tensorboard.BoardWriter.epoch = timed
    result = train(RunConfig(dataset=name, epochs=epochs, measures="none", tensorboard=True), runs, progress=False)
    epoch_seconds = result.summary["wall_seconds"] / epochs
    print(f"board: {np.mean(spent) * 1000:.1f} ms per epoch (first {spent[0] * 1000:.1f} ms, then median "
          f"{np.median(spent[1:]) * 1000:.1f} ms) beside {epoch_seconds:.2f} s per epoch; "
          f"{len(list(result.run_dir.glob('events.out.tfevents.*')))} event file(s)")


if __name__ == "__main__":
    main()
