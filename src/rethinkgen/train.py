"""The trainer: one small loop of SGD over a dataset that lives on the training device.

An image folder too large for the device (ImageNet) is streamed instead, by a DataLoader with worker
processes (``rethinkgen.streaming``); both kinds of data hand the loop the same batches and metrics.

Per epoch: draw the data order from (order_seed, epoch), train, then evaluate the full training set
(on the labels it trains on, and on the original labels of the examples whose label changed) and the
test set in eval mode, record the metrics, and checkpoint. Every random draw of an epoch is derived from
the seeds and the epoch number, so a run resumed from its last checkpoint ends with exactly the metrics
of a run that was never interrupted.

The data order and augmentation are drawn from a CPU generator on every device, so a GPU run sees the
batches a CPU run sees. The GPU switches (bf16 autocast, channels_last, torch.compile) are in
speedups.py; data-parallel training of one run by several processes (torchrun) is in distributed.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import itertools
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rethinkgen import data, distributed, models
from rethinkgen.augment import settings_for, training_input
from rethinkgen.config import RunConfig, check_device
from rethinkgen.errors import RethinkgenError
from rethinkgen.preprocess import preprocess
from rethinkgen.randomize import RandomizationRecord, randomize
from rethinkgen.results import RunStore, StoredRun, append_jsonl, write_json, write_jsonl
from rethinkgen.speedups import Speedups, device_type, has_convolutions

FINISHED = ("complete", "diverged")  # statuses a re-run leaves alone
CPU_CONV_EVAL_CHUNK = 128  # see evaluation_plan
TOP5 = 5  # top-5 accuracy is recorded when there are more classes than this (Table 2 reports it)


@dataclass
class RunResult(StoredRun):
    run_id: str
    run_dir: Path
    config: RunConfig
    summary: dict


def resolve_device(name: str) -> torch.device:
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


def epoch_seed(seed: int, epoch: int, stream: str) -> int:
    """A 63-bit seed for one stream of one epoch, independent of every other (seed, epoch, stream)."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def prepare_data(config: RunConfig):
    """Load, subset and randomize the dataset; return (clean, randomized, record)."""
    dataset = data.load_for_run(config.dataset, config.data_dir, config.download, config.image_size)
    if config.subset is not None or config.test_subset is not None:
        dataset = dataset.subset(config.subset, seed=config.randomization_seed, n_test=config.test_subset)
    randomized, record = randomize(dataset, config.label_noise, config.inputs, config.randomization_seed,
                                   config.corrupt_test_labels)
    return dataset, randomized, record


class DeviceData:
    """The dataset on the training device: uint8 images for augmentation, preprocessed floats for the rest."""

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
        """Loss and accuracy (top-1, and top-5 with more than 5 classes) on the full training set, on the
        changed labels' originals, and on the test set."""
        train_logits = predict(model, self.x_train, batch_size, speedups)
        self.last_train_logits = None if speedups.amp else train_logits
        return metrics_from_logits(train_logits, predict(model, self.x_test, batch_size, speedups), self)


def metrics_from_logits(logits: torch.Tensor, test_logits: torch.Tensor, device_data: DeviceData) -> dict:
    result = {
        "train_loss": F.cross_entropy(logits, device_data.y_train).item(),
        "train_accuracy": (logits.argmax(1) == device_data.y_train).float().mean().item(),
        "test_loss": F.cross_entropy(test_logits, device_data.y_test).item(),
        "test_accuracy": (test_logits.argmax(1) == device_data.y_test).float().mean().item(),
        "train_top5_accuracy": fraction(top5_correct(logits, device_data.y_train), len(device_data.y_train)),
        "test_top5_accuracy": fraction(top5_correct(test_logits, device_data.y_test), len(device_data.y_test)),
        "changed_original_accuracy": None,
    }
    if len(device_data.changed):
        guesses = logits[device_data.changed].argmax(1)
        result["changed_original_accuracy"] = (guesses == device_data.y_changed_original).float().mean().item()
    return result


def top5_correct(logits: torch.Tensor, labels: torch.Tensor) -> int | None:
    """How many labels are among the 5 largest logits; None with 5 classes or fewer (always all of them)."""
    if logits.shape[1] <= TOP5:
        return None
    return (logits.topk(TOP5, dim=1).indices == labels[:, None]).any(1).sum().item()


def fraction(count: int | None, total: int) -> float | None:
    return None if count is None or not total else count / total


def training_data(clean, randomized, record: RandomizationRecord, config: RunConfig, device):
    """The dataset on the device, or, for an image folder, streamed from disk."""
    if isinstance(randomized, data.ImageFiles):
        from rethinkgen.streaming import StreamedData

        return StreamedData(clean, randomized, record, config, device)
    return DeviceData(clean, randomized, record, config, device)


def evaluation_plan(model, x: torch.Tensor, batch_size: int, speedups: Speedups) -> tuple[int, Speedups]:
    """How to evaluate: conv nets on the CPU go faster in chunks of at most CPU_CONV_EVAL_CHUNK images with
    channels_last inputs (1.3-1.5x for alexnet-small and inception-small in benchmarks/profile_epoch.py);
    both change only the order of floating-point work, never which images are evaluated."""
    if x.device.type == "cpu" and x.dim() == 4 and has_convolutions(model):
        return min(batch_size, CPU_CONV_EVAL_CHUNK), dataclasses.replace(speedups, channels_last=True)
    return batch_size, speedups


@torch.no_grad()
def predict(model, x: torch.Tensor, batch_size: int, speedups: Speedups = Speedups()) -> torch.Tensor:
    model.eval()
    batch_size, speedups = evaluation_plan(model, x, batch_size, speedups)
    with speedups.autocast(x.device):
        return torch.cat([speedups.full_precision(model(speedups.inputs(x[i:i + batch_size])))
                          for i in range(0, len(x), batch_size)])


def evaluate(model, device_data, batch_size: int, speedups: Speedups = Speedups()) -> dict:
    """The epoch-end metrics of ``device_data`` (DeviceData or StreamedData); top-5 is None for <= 5 classes."""
    return device_data.evaluate(model, batch_size, speedups)


def _save_checkpoint(path: Path, state: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def summarize(history: list[dict], fit_threshold: float) -> dict:
    """Final metrics, time to fit and best test accuracy, from the per-epoch history."""
    summary = {key: None for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy",
                                     "changed_original_accuracy", "online_accuracy", "generalization_gap", "steps_to_fit",
                                     "epochs_to_fit", "loss_at_fit", "best_test_accuracy", "best_test_epoch",
                                     "train_top5_accuracy", "test_top5_accuracy", "best_test_top5_accuracy")}
    summary.update(epochs_completed=len(history), steps=history[-1]["step"] if history else 0,
                   wall_seconds=history[-1]["wall_seconds"] if history else 0.0, fitted=False)
    if not history:
        return summary
    last = history[-1]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "changed_original_accuracy",
                "online_accuracy", "train_top5_accuracy", "test_top5_accuracy"):
        summary[key] = last.get(key)  # runs recorded before top-5 existed lack it
    summary["generalization_gap"] = last["train_accuracy"] - last["test_accuracy"]
    fit = next((row for row in history if row["train_accuracy"] >= fit_threshold), None)
    if fit is not None:
        summary.update(fitted=True, steps_to_fit=fit["step"], epochs_to_fit=fit["epoch"], loss_at_fit=fit["train_loss"])
    best = max(history, key=lambda row: row["test_accuracy"])
    summary.update(best_test_accuracy=best["test_accuracy"], best_test_epoch=best["epoch"])
    top5 = [row["test_top5_accuracy"] for row in history if row.get("test_top5_accuracy") is not None]
    summary["best_test_top5_accuracy"] = max(top5) if top5 else None
    seconds = sum(row["train_seconds"] for row in history)
    summary["images_per_second"] = sum(row["images"] for row in history) / seconds if seconds else None
    return summary


def train(config: RunConfig, runs_dir: str | Path = "runs", progress: bool = True,
          log: Callable[[str], None] | None = None, index: bool = True) -> RunResult:
    """Train one run, or resume it from its checkpoint, or return it if it already finished.
    ``index=False`` writes the run folder only, leaving the runs folder's index to the caller.

    Under torchrun every process calls this and they train the run together (see distributed.py); rank 0
    writes the run folder and the others return the same run without writing anything.
    """
    config = config.validated().resolved()
    ctx = distributed.from_environment()
    if not ctx.is_main:
        progress, log = False, (lambda message: None)
    log = log or (lambda message: tqdm.write(message) if progress else None)
    ctx.join(device_type(config.device))
    return _train(config, runs_dir, progress, log, ctx, index)


def _train(config: RunConfig, runs_dir, progress, log, ctx: distributed.Context, index: bool = True) -> RunResult:
    run_id = config.run_id()
    previous = ctx.on_main(lambda: _finished_summary(Path(runs_dir) / run_id))
    if previous is not None:
        log(f"run {run_id} already {previous['status']}; nothing to do")
        return RunResult(run_id, Path(runs_dir) / run_id, config, previous)

    # everything that can refuse the settings (device, data, crop, pad, the model for the data's shape)
    # is checked before anything is written, so a refused run leaves no folder behind
    device = ctx.device(resolve_device(config.device))
    clean, randomized, record = prepare_data(config)
    ctx.check_same(record.dataset_hash, "hash of the randomized data")
    device_data = training_data(clean, randomized, record, config, device)
    if ctx.active and not isinstance(device_data, DeviceData):
        raise RethinkgenError(f"dataset {config.dataset!r} is streamed from disk, which distributed training does "
                              "not support yet; train it in one process")
    model = seeded_model(config, device_data, device)
    store = ctx.on_main(lambda: RunStore(runs_dir, index=index))
    run_dir = store.run_dir(run_id)
    with contextlib.ExitStack() as held:
        def lock():
            run_dir.mkdir(exist_ok=True)
            held.enter_context(run_lock(run_dir, run_id))

        ctx.on_main(lock)  # rank 0 holds the lock; every rank learns if the run is busy
        return _train_locked(config, store, run_id, run_dir, device, randomized, record, device_data, model,
                             progress, log, ctx)


def _finished_summary(run_dir: Path) -> dict | None:
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        if summary.get("status") in FINISHED:
            return summary
    return None


class RunBusy(RethinkgenError):
    """Another process is training this run right now."""


@contextlib.contextmanager
def run_lock(run_dir: Path, run_id: str):
    """An exclusive lock on the run folder for as long as this process trains it (released on exit)."""
    with open(run_dir / "lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(f"run {run_id} is being trained by another process") from None
        yield


def _open_locked(config, run_id, run_dir, randomized, record) -> dict | None:
    """With the lock held: the run's summary if it finished meanwhile; else check or save its record."""
    finished = _finished_summary(run_dir)
    if finished is None:
        open_run_dir(config, run_id, run_dir, record, len(randomized.y_train))
    return finished


def open_run_dir(config: RunConfig, run_id: str, run_dir: Path, record: RandomizationRecord, n_train: int) -> None:
    """Save the randomization record and config, or check that a resumed run still sees the same data."""
    if (run_dir / "randomization.json").exists():
        saved = RandomizationRecord.load(run_dir)
        if saved.dataset_hash != record.dataset_hash:
            raise RethinkgenError(
                f"run {run_id}: the data now hash to {record.dataset_hash}, but the run started on "
                f"{saved.dataset_hash}; refusing to resume on different data (remove {run_dir} to restart)")
    else:
        record.save(run_dir, n_train)
    write_json(run_dir / "config.json", config.to_dict())



def seeded_model(config: RunConfig, device_data, device) -> torch.nn.Module:
    """The run's model at its seeded initialization, on ``device``; writes nothing."""
    torch.manual_seed(config.init_seed)
    model_options = {"dropout": config.dropout} if config.dropout else {}
    model = models.create_model(config.model, device_data.input_shape, device_data.num_classes, **model_options)
    return model.to(device)


def save_initial(model: torch.nn.Module, run_dir: Path) -> None:
    """Keep the initial weights as initial.pt (distance-from-init measures need them), once: a resumed run
    keeps the first."""
    if not (run_dir / "initial.pt").exists():
        _save_checkpoint(run_dir / "initial.pt", {"model": model.state_dict()})


def load_checkpoint(run_dir: Path) -> dict | None:
    """The last epoch's checkpoint (on the CPU), with its ``history`` and ``steps`` (the log rows it covers)
    and the logs rewritten to match it: the logs are appended to each epoch, so rows written after the
    checkpoint are dropped."""
    path = run_dir / "checkpoint.pt"
    state = torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None
    if state and "history" not in state:  # it counts the rows (older checkpoints carry them)
        state["history"] = _logged_rows(run_dir / "metrics.jsonl", state.pop("epochs"))
        state["steps"] = _logged_rows(run_dir / "steps.jsonl", state.pop("logged_steps"))
    write_jsonl(run_dir / "metrics.jsonl", state["history"] if state else [])
    write_jsonl(run_dir / "steps.jsonl", state["steps"] if state else [])
    return state


def _logged_rows(path: Path, count: int) -> list[dict]:
    """The first ``count`` rows of a log, all written before the checkpoint that counts them."""
    rows = []
    with contextlib.suppress(FileNotFoundError), open(path) as handle:
        for line in itertools.islice(handle, count):
            rows.append(json.loads(line))
    if len(rows) < count:
        raise RethinkgenError(f"{path} has {len(rows)} rows but its run's checkpoint.pt covers {count}; the log was "
                              f"cut short: remove {path.parent} to train the run again")
    return rows


def save_epoch(run_dir: Path, history: list[dict], step_log: list[dict], logged_steps: int, state: dict) -> int:
    """Append the epoch's rows to the logs, then checkpoint; return how many step rows are now logged.

    The checkpoint counts the log rows it covers rather than carrying them (``torch.save`` pickling the
    whole history every epoch took half of a tiny 600-epoch run's time), so a resumed run keeps exactly
    those rows and drops any written after it."""
    append_jsonl(run_dir / "metrics.jsonl", history[-1:])
    append_jsonl(run_dir / "steps.jsonl", step_log[logged_steps:])
    _save_checkpoint(run_dir / "checkpoint.pt", {**state, "epochs": len(history), "logged_steps": len(step_log)})
    return len(step_log)


def summary_base(run_id: str, device, model, device_data: DeviceData, record: RandomizationRecord,
                 speedups: Speedups, world_size: int = 1) -> dict:
    return {"run_id": run_id, "device": str(device), "parameters": models.count_parameters(model),
            "num_classes": device_data.num_classes,
            "fraction_labels_changed": len(record.changed) / device_data.num_train, "message": "",
            **speedups.describe(), "world_size": world_size}


def measure_completed(model, device_data, run_dir: Path, history: list[dict], config: RunConfig) -> dict:
    """The complexity measures of a completed run (``config.measures``), as measure_<name> summary keys.
    They need the training set in memory: runs streamed from an image folder get none."""
    from rethinkgen.measures.runs import measure_trained

    if not isinstance(device_data, DeviceData):
        return {}
    return measure_trained(model, device_data, run_dir, summarize(history, config.fit_threshold), config,
                           device_data.last_train_logits)


def write_summary(store: RunStore, config: RunConfig, run_dir: Path, base: dict, history: list[dict], status: str,
                  message: str = "", write: bool = True, extra: dict | None = None) -> dict:
    summary = {**base, **summarize(history, config.fit_threshold), **(extra or {}), "status": status,
               "message": message}
    if write:
        write_json(run_dir / "summary.json", summary)
        store.register(base["run_id"], config.to_dict(), summary)
    return summary


def record_failure(store: RunStore, config: RunConfig, message: str) -> dict:
    """Record a run that failed before it could start (a user's model factory raised): its folder holds its
    config and a summary with status "failed" and ``message``, and the index lists it, as for a run that
    failed while training. Returns the summary."""
    config = config.validated().resolved()
    run_id = config.run_id()
    run_dir = store.run_dir(run_id)
    run_dir.mkdir(exist_ok=True)
    write_json(run_dir / "config.json", config.to_dict())
    return write_summary(store, config, run_dir, {"run_id": run_id}, [], "failed", message)


def _train_locked(config, store, run_id, run_dir, device, randomized, record, device_data, model, progress, log,
                  ctx) -> RunResult:
    finished = ctx.on_main(lambda: _open_locked(config, run_id, run_dir, randomized, record))
    if finished is not None:
        return RunResult(run_id, run_dir, config, finished)

    if ctx.is_main:
        save_initial(model, run_dir)
    speedups = Speedups.resolve(config.amp, config.channels_last, config.compile, device, model)
    model = ctx.sync_batchnorm(model, device)
    if speedups.channels_last:
        model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if speedups.compile else model  # what evaluates (on rank 0)
    trained = ctx.data_parallel(net, device)  # what trains: net itself in one process
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)

    history, step_log, start_epoch, step = [], [], 0, 0
    # rank 0 reads the checkpoint and hands it to the others, so they need not see the run folder
    state = ctx.on_main(lambda: load_checkpoint(run_dir))
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, step_log, step = state["history"], state["steps"], state["step"]
        start_epoch = len(history)
        log(f"run {run_id}: resuming after epoch {start_epoch}")
    base = summary_base(run_id, device, model, device_data, record, speedups, ctx.world_size)

    measured = {}  # measure_<name> values, once the run completes

    def finish(status: str, message: str = "") -> dict:
        return write_summary(store, config, run_dir, base, history, status, message, write=ctx.is_main,
                             extra=measured)

    finish("running")
    n_train = device_data.num_train
    wall_before = history[-1]["wall_seconds"] if history else 0.0
    status, message = "complete", ""
    logged_steps = len(step_log)
    epochs = tqdm(range(start_epoch, config.epochs), initial=start_epoch, total=config.epochs, disable=not progress,
                  desc=f"{run_id} {config.model} p={config.label_noise:g} {config.inputs}", leave=False,
                  unit="epoch", dynamic_ncols=True)
    try:
        for epoch in epochs:
            started = time.perf_counter()
            lr = config.lr * config.lr_decay ** epoch
            for group in optimizer.param_groups:
                group["lr"] = lr
            # the order and augmentation come from the CPU on every device; dropout from each device's own
            generator = torch.Generator().manual_seed(epoch_seed(config.order_seed, epoch, "order"))
            torch.manual_seed(epoch_seed(config.init_seed, epoch, ctx.stream("dropout")))
            order = torch.randperm(n_train, generator=generator).to(device)
            trained.train()
            loss_sum, loss_count = torch.zeros((), device=device), 0
            online_correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            for images, labels, global_size in device_data.batches(order, generator, config.batch_size, ctx.part):
                with speedups.autocast(device):
                    logits = trained(speedups.inputs(images))
                    loss = ctx.batch_loss(logits, labels, global_size)
                online_correct += (logits.detach().argmax(1) == labels).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                loss_sum += loss.detach()
                loss_count += 1
                if step % config.log_every == 0:
                    mean_loss = (ctx.all_mean(loss_sum) / loss_count).item()
                    step_log.append({"step": step, "epoch": epoch + seen / n_train, "loss": mean_loss})
                    loss_sum, loss_count = torch.zeros((), device=device), 0
                    if not math.isfinite(mean_loss):
                        raise _Diverged(f"training loss became {mean_loss} at step {step} (epoch {epoch + 1})")
                seen += global_size
            train_seconds = time.perf_counter() - started
            online_correct = ctx.all_sum(online_correct)
            metrics = ctx.on_main(lambda: evaluate(net, device_data, config.eval_batch_size, speedups))
            if not math.isfinite(metrics["train_loss"]):
                raise _Diverged(f"training loss became {metrics['train_loss']} at step {step} (epoch {epoch + 1})")
            wall_before += time.perf_counter() - started
            # the mean minibatch accuracy while training (on augmented images, in train mode): Table 4's measure
            metrics["online_accuracy"] = online_correct.item() / n_train
            history.append({"epoch": epoch + 1, "step": step, "lr": lr, **metrics, "train_seconds": train_seconds,
                            "images": n_train, "images_per_second": n_train / train_seconds,
                            "wall_seconds": wall_before})
            if ctx.is_main:
                save_epoch(run_dir, history, step_log, logged_steps,
                           {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step})
            logged_steps = len(step_log)
            fitted = metrics["train_accuracy"] >= config.fit_threshold
            epochs.set_postfix(loss=f"{metrics['train_loss']:.3f}", train=f"{metrics['train_accuracy']:.3f}",
                               test=f"{metrics['test_accuracy']:.3f}", refresh=False)
            finish("running")
            if fitted and config.stop_at_fit:
                message = f"stopped at fit after epoch {epoch + 1}"
                break
    except _Diverged as diverged:
        status, message = "diverged", f"diverged: {diverged}"
        if ctx.is_main:
            append_jsonl(run_dir / "steps.jsonl", step_log[logged_steps:])
        log(f"run {run_id} {message}")
    except KeyboardInterrupt:
        finish("interrupted", "interrupted; run the same command again to resume")
        raise
    except Exception as error:
        finish("failed", f"{type(error).__name__}: {error}")
        raise
    finally:
        epochs.close()
    if status == "complete" and config.measures != "none" and ctx.is_main:
        measured.update(measure_completed(model, device_data, run_dir, history, config))
    return RunResult(run_id, run_dir, config, finish(status, message))


class _Diverged(Exception):
    pass
