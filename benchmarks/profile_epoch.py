"""Where one epoch's time goes, for each paper model: data, forward, backward, optimizer, evaluation, saving.

One epoch of the trainer's own pieces (``DeviceData.batch``, the model, SGD, ``DeviceData.evaluate``,
``train.save_epoch``) on random CIFAR-shaped data (3x32x32, centre-cropped to 28x28, with the paper's
crop + flip augmentation), each phase timed on its own. The evaluation of the full training set and the
test set (test = a fifth of the training size, as CIFAR-10's 10,000 / 50,000) should stay under 25% of the
epoch; the last column says whether it does.

Run: ``python benchmarks/profile_epoch.py`` (about 2 minutes on 2 CPU cores), ``--quick`` for a smoke test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from throughput import machine  # noqa: E402

from rethinkgen.config import RunConfig  # noqa: E402
from rethinkgen.data.dataset import Dataset  # noqa: E402
from rethinkgen.data.randomize import randomize  # noqa: E402
from rethinkgen.engine.data import DeviceData  # noqa: E402
from rethinkgen.engine.trainer import save_epoch  # noqa: E402
from rethinkgen.models import create_model, default_lr  # noqa: E402

EVAL_SHARE_LIMIT = 0.25
# engine.evaluate.evaluation_plan evaluates conv nets on the CPU in chunks of at most 128 images with
# channels_last inputs: 1.3-1.5x faster evaluation for alexnet-small and inception-small, measured here.
SIZES = {"mlp-1x512": 20000, "mlp-3x512": 20000, "alexnet-small": 2048, "inception-small": 512}


def cifar_shaped(n_train: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    n_test = max(1, n_train // 5)
    return Dataset("random", rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n_train),
                   rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n_test),
                   tuple(str(i) for i in range(10)))


def profile(model_name: str, n_train: int, folder: Path) -> dict:
    clean = cifar_shaped(n_train)
    randomized, record = randomize(clean, label_noise=1.0, seed=0)
    config = RunConfig(model=model_name, augment=["crop", "flip"]).resolved()
    device_data = DeviceData(clean, randomized, record, config, torch.device("cpu"))
    torch.manual_seed(0)
    model = create_model(model_name, device_data.input_shape, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=default_lr(model_name), momentum=0.9)
    times = dict.fromkeys(("data", "forward", "backward", "optimizer", "evaluation", "saving"), 0.0)
    generator = torch.Generator().manual_seed(0)

    def phase(name, fn):
        started = time.perf_counter()
        value = fn()
        times[name] += time.perf_counter() - started
        return value

    def one_epoch(timed: bool):
        order = torch.randperm(n_train, generator=generator)
        model.train()
        for start in range(0, n_train, config.batch_size):
            index = order[start:start + config.batch_size]
            x = phase("data", lambda index=index: device_data.batch(index, generator))
            loss = phase("forward", lambda x=x, index=index: F.cross_entropy(model(x), device_data.y_train[index]))
            optimizer.zero_grad(set_to_none=True)
            phase("backward", loss.backward)
            phase("optimizer", optimizer.step)
            if not timed and start >= 4 * config.batch_size:
                return

    one_epoch(timed=False)  # warm-up
    for key in times:
        times[key] = 0.0
    one_epoch(timed=True)
    metrics = phase("evaluation", lambda: device_data.evaluate(model, config.eval_batch_size))
    history = [{"epoch": 1, "step": 1, **metrics}]
    phase("saving", lambda: save_epoch(folder, history, [], 0, {"model": model.state_dict(),
                                                                "optimizer": optimizer.state_dict(), "step": 1}))
    total = sum(times.values())
    return {"model": model_name, "n": n_train, "total": total, **{k: v / total for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test in seconds")
    args = parser.parse_args()
    print(machine())
    print(f"{'model':<16} {'images':>7} {'epoch s':>8} {'data':>6} {'forward':>8} {'backward':>9} {'optim':>6} "
          f"{'eval':>6} {'saving':>7}  eval <= {EVAL_SHARE_LIMIT:.0%}")
    with tempfile.TemporaryDirectory() as folder:
        for model_name, n in SIZES.items():
            row = profile(model_name, 64 if args.quick else n, Path(folder))
            print(f"{row['model']:<16} {row['n']:>7} {row['total']:>8.2f} {row['data']:>6.1%} {row['forward']:>8.1%} "
                  f"{row['backward']:>9.1%} {row['optimizer']:>6.1%} {row['evaluation']:>6.1%} {row['saving']:>7.1%}  "
                  f"{'yes' if row['evaluation'] <= EVAL_SHARE_LIMIT else 'NO'}", flush=True)


if __name__ == "__main__":
    main()
