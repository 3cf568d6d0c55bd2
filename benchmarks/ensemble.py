"""K runs at once: one batched ensemble against K runs one after another and K concurrent processes.

Each way trains the same K runs (one model, label noise spread over 0..1, one seed each) end to end
through the real code: ``ensemble.train_ensemble`` in this process; ``train.train`` K times in this
process; ``sweep.run_sweep(workers=K)``, which starts K processes with the cores divided between them.
Throughput = K x epochs x training images / wall seconds, everything included (data preparation,
per-epoch evaluation of the full training and test sets, checkpoints). Every way starts from an empty runs
folder. The ways are measured in interleaved rounds and each keeps its best round, so a burst of load
from other processes does not decide a ratio.

Then, per model, the best CPU settings among threads x batch size x channels_last on a bare training
step (forward, backward, SGD step on ready batches), and whether ``torch.compile`` works here.

Run: ``python benchmarks/ensemble.py`` (needs Fashion-MNIST, e.g. Debian's dataset-fashion-mnist; about
10 minutes on 2 CPU cores), ``--quick`` for a smoke test on digits.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from throughput import machine  # noqa: E402

from rethinkgen import data  # noqa: E402
from rethinkgen.config import RunConfig  # noqa: E402
from rethinkgen.engine.ensemble import train_ensemble  # noqa: E402
from rethinkgen.engine.trainer import train  # noqa: E402
from rethinkgen.experiments.sweep import Sweep, SweepRun, run_sweep  # noqa: E402
from rethinkgen.models import create_model, default_lr  # noqa: E402

TARGET = 1.5  # ensemble / best of (sequential, concurrent), mlp-1x512, K = 11
# engine.stacked lays each stacked linear weight out as its gradient arrives under vmap (transposed): the
# copy autograd made otherwise took 10 ms a step for 11 MLPs on Fashion-MNIST, a quarter of the step.


def configs(model: str, k: int, dataset: str, subset: int, test_subset: int, epochs: int,
            **changes) -> list[RunConfig]:
    noise = [i / max(1, k - 1) for i in range(k)]
    values = {"device": "cpu", "lr_decay": 1.0, **changes}
    return [RunConfig(dataset=dataset, subset=subset, test_subset=test_subset, model=model, epochs=epochs,
                      label_noise=p, seed=i, **values) for i, p in enumerate(noise)]


def run_way(way: str, runs: list[RunConfig], root: Path) -> float:
    """Wall seconds to train ``runs`` one way, into a fresh folder under ``root``."""
    folder = Path(tempfile.mkdtemp(dir=root, prefix=way + "-"))
    started = time.perf_counter()
    if way == "ensemble":
        results = train_ensemble(runs, folder, progress=False)
        statuses = [r.summary["status"] for r in results]
    elif way == "sequential":
        statuses = [train(config, folder, progress=False).summary["status"] for config in runs]
    else:
        plan = Sweep("bench", [SweepRun(f"run{i}", config) for i, config in enumerate(runs)])
        statuses = [status for _, status, _ in run_sweep(plan, folder, workers=len(runs), progress=False).ran]
    seconds = time.perf_counter() - started
    if set(statuses) != {"complete"}:
        raise SystemExit(f"{way}: runs ended {statuses}")
    return seconds


def compare(model: str, k: int, dataset: str, subset: int, test_subset: int, epochs: int, rounds: int,
            root: Path) -> dict:
    runs = configs(model, k, dataset, subset, test_subset, epochs)
    ways = ("ensemble", "sequential", "concurrent")
    best = {way: float("inf") for way in ways}
    for _ in range(rounds):
        for way in ways:
            best[way] = min(best[way], run_way(way, runs, root))
    images = k * epochs * subset
    speed = {way: images / seconds for way, seconds in best.items()}
    ratio = speed["ensemble"] / max(speed["sequential"], speed["concurrent"])
    print(f"{model:<16} K={k:<3} {subset:>6} images x {epochs} epochs | ensemble {speed['ensemble']:8.0f} img/s | "
          f"sequential {speed['sequential']:8.0f} | {k} processes {speed['concurrent']:8.0f} | "
          f"ensemble / best other {ratio:.2f}x", flush=True)
    return {"model": model, "k": k, **speed, "ratio": ratio}


def bare_speed(model_name: str, shape, threads: int, batch: int, channels_last: bool, steps: int,
               compiled: bool = False) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(model_name, shape, 10)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=default_lr(model_name), momentum=0.9)
    x = torch.randn(batch, *shape)
    x = x.to(memory_format=torch.channels_last) if channels_last else x
    y = torch.randint(0, 10, (batch,))

    def step():
        loss = F.cross_entropy(step_model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for _ in range(2):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - started)


def settings(model_name: str, images: int) -> None:
    shape = (3, 28, 28)
    results = []
    for threads in sorted({1, os.cpu_count() or 1}):
        for batch in (64, 128, 256):
            for channels_last in ((False, True) if "mlp" not in model_name else (False,)):
                steps = max(2, images // batch)
                results.append(((threads, batch, channels_last),
                                bare_speed(model_name, shape, threads, batch, channels_last, steps)))
    torch.set_num_threads(os.cpu_count() or 1)
    results.sort(key=lambda item: -item[1])
    (threads, batch, channels_last), speed = results[0]
    default = dict(results)[(os.cpu_count() or 1, 128, False)]
    line = (f"{model_name:<16} best bare step: threads={threads} batch={batch} channels_last={channels_last} "
            f"{speed:8.0f} img/s ({speed / default:.2f}x the default threads={os.cpu_count()} batch=128)")
    if "mlp" not in model_name:
        layout = dict(results)[(os.cpu_count() or 1, 128, True)] / default
        line += f"; channels_last alone at the default threads and batch: {layout:.2f}x"
    try:
        started = time.perf_counter()
        compiled = bare_speed(model_name, shape, os.cpu_count() or 1, 128, False, max(2, images // 128), compiled=True)
        line += f"; torch.compile {compiled:8.0f} img/s ({compiled / default:.2f}x, {time.perf_counter() - started:.0f} s with compiling)"
    except Exception as error:  # compile needs a working C++ toolchain; report, do not fail
        line += f"; torch.compile unavailable here ({type(error).__name__}: {str(error).splitlines()[0][:80]})"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test on digits in seconds")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; each way keeps its best")
    parser.add_argument("--skip-settings", action="store_true", help="only the ensemble comparison")
    args = parser.parse_args()
    print(machine())
    if args.quick:
        plan = [("mlp-1x512", 4, "digits", 200, 100, 1)]
        args.rounds = 1
    else:
        if data.SOURCES["fashion-mnist"].locate() is None:
            raise SystemExit("Fashion-MNIST not found: apt-get install dataset-fashion-mnist (or run with --quick)")
        plan = [("mlp-1x512", k, "fashion-mnist", 10000, 2000, 2) for k in (1, 4, 11)]
        plan += [("alexnet-small", 4, "fashion-mnist", 1000, 200, 1), ("inception-small", 4, "fashion-mnist", 256, 128, 1)]
    with tempfile.TemporaryDirectory() as root:
        # import and warm up everything once (sklearn, torch's optimizers, vmap) so no way pays for it
        run_way("ensemble", configs("mlp-1x512", 2, "digits", 100, 50, 1), Path(root))
        run_way("sequential", configs("mlp-1x512", 1, "digits", 100, 50, 1), Path(root))
        rows = [compare(*entry, args.rounds, Path(root)) for entry in plan]
    k11 = [row for row in rows if row["model"] == "mlp-1x512" and row["k"] == 11]
    if k11:
        verdict = "met" if k11[0]["ratio"] >= TARGET else "NOT met"
        print(f"target: ensemble >= {TARGET}x the best of sequential and concurrent for mlp-1x512, K=11: "
              f"{k11[0]['ratio']:.2f}x ({verdict})")
    if not args.skip_settings and not args.quick:
        for model_name in ("mlp-1x512", "alexnet-small", "inception-small"):
            settings(model_name, {"mlp-1x512": 20000, "alexnet-small": 1500, "inception-small": 384}[model_name])


if __name__ == "__main__":
    main()
