"""The GPU path, checked and measured: one prepared script for a machine with a CUDA GPU.

1. Check: a small case (CIFAR-shaped data, label noise 0.5, random crop + flip, mlp-1x512 and
   alexnet-small, float32 with TF32 off) is trained on the CPU and on the GPU. Both must draw the same
   randomization record (byte for byte) and give the same per-epoch metrics within LOSS_RTOL and
   ACCURACY_EXAMPLES; the same case with bf16 autocast on the GPU is shown beside it for information.
2. Benchmark: each paper model fits random labels of CIFAR-shaped data (3x32x32, centre-cropped to 28x28,
   10 classes, class templates plus noise from the ``synthetic`` source, written as CIFAR-10 batches)
   with every switch off (fp32), then bf16 autocast, channels_last (models with convolutions), the
   ``auto`` defaults and torch.compile, each alone. For each it reports training images/s (epochs after
   the first), the first epoch's time (cuDNN warm-up and compiling fall there) and the wall time to 99%
   training accuracy, which includes the trainer's per-epoch evaluation and checkpoint. The learning rate
   decays by the paper's 0.95 per 50,000 images (per step as in the paper, although epochs are shorter).

3. Ensembles: K runs of mlp-1x512 and alexnet-small (label noise spread over 0..1) trained as one
   batched model (``ensemble.train_ensemble``) against the same K runs one after another, for K up to 32,
   with the ensemble's speed-up; in the time left after the benchmark (ENSEMBLE_SHARE of the budget).

The work is budgeted by measured time: one epoch of each model is timed first, every run then gets the
epochs that fit its share of the time left, and a run that would not fit is skipped and says so. The
whole script ends within 8 minutes (BUDGET_S plus start-up) and prints one table with the device name.

Run: ``bash benchmarks/gpu.sh`` (or ``PYTHONPATH=src python benchmarks/gpu.py``). ``--smoke`` runs tiny
sizes on the CPU in seconds, without compile; the test suite runs it so that the script cannot rot.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from rethinkgen.config import RunConfig
from rethinkgen.data.builtin import load_synthetic
from rethinkgen.data.cifar import write_batch
from rethinkgen.engine.speedups import Speedups, has_convolutions
from rethinkgen.engine.trainer import train
from rethinkgen.models import create_model

BUDGET_S = 420         # check and benchmark; with start-up the script ends well inside 8 minutes
COMPILE_SHARE = 0.45   # of the benchmark's time kept for the compile runs, which run last
COMPILE_GUESS_S = 30   # compile time assumed until a compile run has been measured (then the largest seen)
PAPER_TRAIN = 50_000   # CIFAR-10's training set, over which the paper decays the learning rate by 0.95
FIT = 0.99             # "fitted" for the time-to-fit column: 99% training accuracy
BATCH = 128
ENSEMBLE_SHARE = 0.2   # of the budget kept for the ensemble comparison, which runs last
ENSEMBLE_SIZES = (1, 4, 11, 32)
MODELS = ("mlp-1x512", "mlp-3x512", "alexnet-small", "inception-small")
CHECK_MODELS = ("mlp-1x512", "alexnet-small")  # inception-small is too slow on a CPU for a quick check
LOSS_RTOL = 1e-3       # fp32 GPU vs CPU: relative difference allowed in every loss
ACCURACY_EXAMPLES = 2  # ... and in accuracies, in examples (a near-tie may flip after float differences)
# name: (amp, channels_last, compile)
SETTINGS = {"fp32": ("off", "off", "off"), "bf16": ("bf16", "off", "off"), "channels_last": ("off", "on", "off"),
            "auto": ("auto", "auto", "auto"), "compile": ("off", "off", "on")}


@dataclass(frozen=True)
class Sizes:
    check_train: int
    check_test: int
    check_epochs: int
    check_models: tuple
    models: tuple
    train: int
    test: int
    max_epochs: int


FULL = Sizes(check_train=512, check_test=256, check_epochs=3, check_models=CHECK_MODELS, models=MODELS,
             train=2048, test=1024, max_epochs=300)
# one MLP and one conv net cover every code path; bf16 convolutions are slow on CPUs without bf16 units
SMOKE = Sizes(check_train=64, check_test=32, check_epochs=1, check_models=("mlp-1x512",),
              models=("mlp-1x512", "alexnet-small"), train=16, test=16, max_epochs=1)
TIMING = {"train_seconds", "wall_seconds", "images_per_second"}


def write_cifar_shaped(directory: Path, n_train: int, n_test: int) -> Path:
    """Class templates plus noise, 3x32x32 and 10 classes, as CIFAR-10 python batches."""
    data = load_synthetic(n_train, n_test, channels=3, size=32, num_classes=10, seed=0)
    directory.mkdir(parents=True)
    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        write_batch(directory / f"data_batch_{i}", data.x_train[part], data.y_train[part])
    write_batch(directory / "test_batch", data.x_test, data.y_test)
    with open(directory / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [name.encode() for name in data.classes]}, handle)
    return directory


def config(data_dir: Path, model: str, device: str, n_train: int, n_test: int, epochs: int, **changes) -> RunConfig:
    values = dict(dataset="cifar10", data_dir=str(data_dir), subset=n_train, test_subset=n_test, model=model,
                  epochs=epochs, batch_size=BATCH, eval_batch_size=1024, device=device, amp="off",
                  channels_last="off", compile="off")
    return RunConfig(**{**values, **changes})


# ---------------------------------------------------------------- 1. the check
def differences(a, b) -> tuple[float, int]:
    """Largest relative loss difference and largest accuracy difference in examples, epoch by epoch."""
    loss = max(abs(x[k] - y[k]) / max(abs(x[k]), 1e-12) for x, y in zip(a.metrics, b.metrics)
               for k in ("train_loss", "test_loss"))
    sizes = {"train_accuracy": a.config.subset, "test_accuracy": a.config.test_subset,
             "online_accuracy": a.config.subset}
    examples = max(round(abs(x[k] - y[k]) * n) for x, y in zip(a.metrics, b.metrics) for k, n in sizes.items())
    return loss, examples


def same_record(a, b) -> bool:
    same_json = (a.run_dir / "randomization.json").read_text() == (b.run_dir / "randomization.json").read_text()
    with np.load(a.run_dir / "randomization.npz") as x, np.load(b.run_dir / "randomization.npz") as y:
        same_arrays = sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)
    return same_json and same_arrays


def check(data_dir: Path, runs: Path, device: str, sizes: Sizes) -> tuple[list[str], bool]:
    lines, passed = [], True
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # true fp32 on the GPU
    try:
        for model in sizes.check_models:
            case = dict(label_noise=0.5, augment=("crop", "flip"), lr=0.01, log_every=1)
            make = lambda dev, model=model, case=case, **c: config(data_dir, model, dev, sizes.check_train, sizes.check_test,  # noqa: E731
                                           sizes.check_epochs, **case, **c)
            cpu = train(make("cpu"), runs / "check-cpu", progress=False)
            gpu = train(make(device), runs / f"check-{device}", progress=False)
            loss, examples = differences(cpu, gpu)
            record = same_record(cpu, gpu)
            ok = record and loss <= LOSS_RTOL and examples <= ACCURACY_EXAMPLES
            passed &= ok
            lines.append(f"  {model:14s} fp32 {device} vs cpu: record {'identical' if record else 'DIFFERS'}, "
                         f"max loss difference {loss:.1e} (allowed {LOSS_RTOL:g}), max accuracy difference "
                         f"{examples} example(s) (allowed {ACCURACY_EXAMPLES}): {'PASS' if ok else 'FAIL'}")
            bf16 = train(make(device, amp="bf16"), runs / f"check-{device}-bf16", progress=False)
            loss, examples = differences(cpu, bf16)
            lines.append(f"  {model:14s} bf16 {device} vs fp32 cpu: max loss difference {loss:.1e}, max accuracy "
                         f"difference {examples} example(s) (information: bf16 changes results)")
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    return lines, passed


# ---------------------------------------------------------------- 2. the benchmark
def measure(cfg: RunConfig, runs: Path) -> dict:
    result = train(cfg, runs, progress=False)
    rows = result.metrics
    if not rows:
        raise RuntimeError(f"{result.summary['status']} before its first epoch ended: {result.summary['message']}")
    later = rows[1:] or rows
    fit = next((row for row in rows if row["train_accuracy"] >= FIT), None)
    return {"images_per_second": sum(r["images"] for r in later) / sum(r["train_seconds"] for r in later),
            "first_epoch_s": rows[0]["wall_seconds"], "fit_s": fit["wall_seconds"] if fit else None,
            "fit_epoch": fit["epoch"] if fit else None, "epochs": len(rows),
            "train_accuracy": rows[-1]["train_accuracy"], "status": result.summary["status"]}


def resolved_name(model: str, setting: str, device: str) -> str:
    amp, channels_last, compile = SETTINGS[setting]
    net = create_model(model, (3, 28, 28), 10)
    if channels_last == "on" and not has_convolutions(net):
        return "fp32"  # nothing to lay out: the row would repeat fp32
    switches = Speedups.resolve(RunConfig(amp=amp, device=device).resolved().amp, channels_last, compile,
                                torch.device(device), net)
    on = [name for name, value in (("bf16", switches.amp), ("channels_last", switches.channels_last),
                                   ("compile", switches.compile)) if value]
    return " + ".join(on) or "fp32"


def plan(models, device: str, smoke: bool) -> list[tuple[str, str, str]]:
    """(model, setting, what it resolves to) for every distinct run; compile runs last."""
    runs, compiled = [], []
    for model in models:
        seen = set()
        for setting in SETTINGS:
            name = resolved_name(model, setting, device)
            if name in seen:
                continue  # auto equal to another row, or channels_last on a model without convolutions
            seen.add(name)
            if setting == "compile":
                if not smoke:
                    compiled.append((model, setting, name))
            else:
                runs.append((model, setting, name))
    return runs + compiled


def benchmark(data_dir: Path, runs: Path, device: str, sizes: Sizes, models, deadline: float, smoke: bool):
    started = time.perf_counter()
    epoch_s = {}
    for model in models:  # one timed epoch per model, in fp32, to budget the rest
        probe = measure(config(data_dir, model, device, sizes.train, sizes.test, 1, label_noise=1.0),
                        runs / "probe")
        epoch_s[model] = probe["first_epoch_s"]
    todo = plan(models, device, smoke)
    eager = [run for run in todo if run[1] != "compile"]
    compile_deadline = deadline
    eager_deadline = started + (deadline - started) * (1 - (COMPILE_SHARE if len(eager) < len(todo) else 0))
    compile_guess = COMPILE_GUESS_S
    results = []
    for i, (model, setting, name) in enumerate(todo):
        compiling = setting == "compile"
        end = compile_deadline if compiling else eager_deadline
        left_runs = sum(1 for run in todo[i:] if (run[1] == "compile") == compiling)
        allowance = (end - time.perf_counter()) / left_runs - (compile_guess if compiling else 0)
        epochs = min(sizes.max_epochs, int(allowance / epoch_s[model]))
        if epochs < 1:
            results.append((model, setting, name, None, f"skipped: {max(allowance, 0):.0f}s left for it"))
            print(f"  {model:16s} {setting:13s} skipped (budget)", flush=True)
            continue
        amp, channels_last, compile = SETTINGS[setting]
        # the paper's 0.95 per CIFAR-10 epoch, per step: a small training set must not decay 25x faster
        cfg = config(data_dir, model, device, sizes.train, sizes.test, epochs, label_noise=1.0, stop_at_fit=True,
                     fit_threshold=FIT, lr_decay=0.95 ** (sizes.train / PAPER_TRAIN), amp=amp,
                     channels_last=channels_last, compile=compile)
        try:
            row = measure(cfg, runs / f"{model}-{setting}")
        except Exception as error:  # one failing setting (e.g. no compiler for torch.compile) keeps the table
            results.append((model, setting, name, None, f"failed: {type(error).__name__}: {error}"[:120]))
            print(f"  {model:16s} {setting:13s} failed: {type(error).__name__}: {error}", flush=True)
            continue
        if compiling:  # what compiling cost, to budget the next compile run (larger models compile longer)
            compile_guess = max(compile_guess, row["first_epoch_s"] - epoch_s[model])
        results.append((model, setting, name, row, ""))
        fit = f"fitted in {row['fit_s']:.1f} s" if row["fit_s"] is not None else "not fitted"
        print(f"  {model:16s} {setting:13s} {row['images_per_second']:>10,.0f} images/s, {fit}, "
              f"{row['epochs']} of at most {epochs} epoch(s), train accuracy {row['train_accuracy']:.3f}", flush=True)
    return results


def ensembles(data_dir: Path, root: Path, device: str, sizes: Sizes, deadline: float, smoke: bool) -> list[str]:
    """Images/s of K runs as one ensemble and one after another, while the time lasts (largest K last)."""
    from ensemble import configs, run_way  # benchmarks/ensemble.py, beside this script

    lines = ["| model | K | ensemble (img/s) | one after another (img/s) | ensemble / one after another |",
             "|---|---:|---:|---:|---:|"]
    for model in ("mlp-1x512",) if smoke else ("mlp-1x512", "alexnet-small"):
        for k in (1, 2) if smoke else ENSEMBLE_SIZES:
            runs = configs(model, k, "cifar10", sizes.train, sizes.test, 1 if smoke else 2, data_dir=str(data_dir),
                           device=device)
            started = time.perf_counter()
            together = run_way("ensemble", runs, root)
            if time.perf_counter() + 1.5 * together * max(1, k) > deadline and k > 1:
                lines.append(f"| {model} | {k} | {len(runs) * runs[0].epochs * sizes.train / together:,.0f} | "
                             "skipped: out of time | - |")
                break
            apart = run_way("sequential", runs, root)
            images = len(runs) * runs[0].epochs * sizes.train
            lines.append(f"| {model} | {k} | {images / together:,.0f} | {images / apart:,.0f} | {apart / together:.2f}x |")
            print(lines[-1], f"({time.perf_counter() - started:.0f} s)", flush=True)
    return lines


def table(results) -> list[str]:
    lines = [f"| model | setting | switches on | training images/s | first epoch (s) | time to {FIT:.0%} "
             "train accuracy (s) | epochs run |", "|---|---|---|---:|---:|---:|---:|"]
    for model, setting, name, row, note in results:
        if row is None:
            lines.append(f"| {model} | {setting} | {name} | - | - | {note} | - |")
            continue
        fit = (f"{row['fit_s']:.1f} (epoch {row['fit_epoch']})" if row["fit_s"] is not None
               else f"not fitted (accuracy {row['train_accuracy']:.3f})")
        lines.append(f"| {model} | {setting} | {name} | {row['images_per_second']:,.0f} | {row['first_epoch_s']:.2f} "
                     f"| {fit} | {row['epochs']} |")
    return lines


def describe_machine(device: str) -> str:
    if device == "cpu":
        return f"device: CPU ({platform.processor() or platform.machine()}), torch {torch.__version__}"
    props = torch.cuda.get_device_properties(device)
    return (f"device: {torch.cuda.get_device_name(device)} ({props.total_memory / 2**30:.0f} GiB), torch "
            f"{torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, TF32 in "
            f"benchmark runs: matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, without compile (seconds)")
    parser.add_argument("--budget", type=float, help=f"seconds for the check and benchmark (default: {BUDGET_S})")
    parser.add_argument("--models", nargs="+", choices=MODELS, metavar="MODEL",
                        help="paper models to benchmark (default: all four; --smoke: mlp-1x512 alexnet-small)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    if args.smoke:
        device, sizes, budget = "cpu", SMOKE, args.budget or 300
    elif torch.cuda.is_available():
        device, sizes, budget = "cuda", FULL, args.budget or BUDGET_S
    else:
        print("gpu.py: no CUDA GPU is visible; use --smoke to run the script on the CPU", file=sys.stderr)
        return 2
    print(describe_machine(device))
    print(f"data: CIFAR-shaped synthetic (3x32x32 centre-cropped to 28x28, 10 classes); check on "
          f"{sizes.check_train} images x {sizes.check_epochs} epoch(s), benchmark on {sizes.train} images with "
          f"random labels, batch {BATCH}; budget {budget:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = write_cifar_shaped(Path(tmp) / "cifar", max(sizes.train, sizes.check_train),
                                      max(sizes.test, sizes.check_test))
        runs = Path(tmp) / "runs"
        print("\ncheck: the GPU path against the CPU path" + (" (smoke: the CPU against itself)" if args.smoke else ""))
        lines, passed = check(data_dir, runs, device, sizes)
        print("\n".join(lines), flush=True)
        print("\nbenchmark:" + (" (smoke: compile skipped, it takes tens of seconds on a CPU)" if args.smoke else ""))
        results = benchmark(data_dir, runs, device, sizes, args.models or sizes.models,
                            began + budget * (1 - ENSEMBLE_SHARE), args.smoke)
        print("\nensembles: K runs as one batched model against the same K runs one after another")
        ensemble_lines = ensembles(data_dir, Path(tmp), device, sizes, began + budget, args.smoke)
    print(f"\n{describe_machine(device)}; total {time.perf_counter() - began:.0f} s; "
          f"check {'passed' if passed else 'FAILED'}\n")
    print("\n".join(table(results)))
    print("\n" + "\n".join(ensemble_lines))
    print(json.dumps({"check_passed": passed, "runs": len(results)}))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
