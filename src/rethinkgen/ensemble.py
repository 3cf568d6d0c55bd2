"""K runs of one architecture trained as one batched model.

A randomization study is many small runs of the same network that differ only in seeds, label noise or
input randomization. Here their weights are stacked (``torch.func.stack_module_state``) and one
``vmap``-ed forward and backward pass trains all of them at once, with one optimizer step over the stacked
tensors (SGD is elementwise, so each copy gets exactly its own update). Each copy keeps its own data, data
order, augmentation draws, labels, metrics, checkpoint and run folder, drawn from its own seeds exactly as
``train.train`` draws them, so the runs it writes are ordinary runs: a copy's files, summary keys and
(up to floating-point summation order) metrics are those of the same run trained alone, and either trainer
can resume the other's checkpoints.

Copies must agree on everything but ``GROUP_FREE`` settings, and train without dropout (its random masks
under ``vmap`` could not match a run trained alone).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from rethinkgen import distributed
from rethinkgen.config import RunConfig
from rethinkgen.errors import RethinkgenError
from rethinkgen.results import RunStore, append_jsonl
from rethinkgen.speedups import Speedups
from rethinkgen.train import (FINISHED, DeviceData, RunBusy, RunResult, epoch_seed, evaluation_plan, load_checkpoint,
                              measure_completed, metrics_from_logits, open_run_dir, prepare_data, resolve_device,
                              run_lock, save_epoch, save_initial, seeded_model, summary_base, write_summary)

# settings in which the copies of one ensemble may differ
GROUP_FREE = ("seed", "randomization_seed", "init_seed", "order_seed", "label_noise", "inputs",
              "corrupt_test_labels", "fit_threshold", "stop_at_fit", "data_dir", "download", "measures")


def group_key(config: RunConfig) -> str | None:
    """Runs with the same key can share an ensemble; None for a run that must be trained alone."""
    config = config.resolved()
    if config.dropout or config.dataset == "imagefolder":  # masks under vmap; data streamed from disk
        return None
    return json.dumps({k: v for k, v in config.to_dict().items() if k not in GROUP_FREE}, sort_keys=True)


def group_configs(configs: list[RunConfig], size: int) -> list[list[RunConfig]]:
    """Compatible runs in groups of at most ``size``, in their original order; incompatible runs alone."""
    if size < 1:
        raise RethinkgenError(f"ensemble size {size} must be at least 1")
    groups, open_groups = [], {}
    for config in configs:
        key = group_key(config) if size > 1 else None
        if key is None:
            groups.append([config])
            continue
        if key not in open_groups or len(open_groups[key]) >= size:
            open_groups[key] = []
            groups.append(open_groups[key])
        open_groups[key].append(config)
    return groups


class _Copy:
    """One run of the ensemble: its files, data, history and bookkeeping."""

    def __init__(self, config: RunConfig, store: RunStore):
        self.config, self.store = config, store
        self.run_id = config.run_id()
        self.run_dir = store.run_dir(self.run_id)
        self.history, self.step_log, self.logged_steps, self.step = [], [], 0, 0
        self.status, self.message, self.measured = "running", "", {}

    def finish(self, status: str, message: str = "") -> dict:
        """Write the summary; a completed copy first gets its complexity measures, as in ``train.train``
        (``self.model`` holds its last checkpoint's weights)."""
        self.status, self.message = status, message
        if status == "complete" and self.config.measures != "none":
            self.measured = measure_completed(self.model, self.data, self.run_dir, self.history, self.config)
        return write_summary(self.store, self.config, self.run_dir, self.base, self.history, status, message,
                             extra=self.measured)

    def result(self) -> RunResult:
        return RunResult(self.run_id, self.run_dir, self.config, json.loads((self.run_dir / "summary.json").read_text()))


def train_ensemble(configs: list[RunConfig], runs_dir: str | Path = "runs", progress: bool = True,
                   log=None, index: bool = True) -> list[RunResult]:
    """Train ``configs`` (compatible runs, see ``group_key``) as one batched model; resume or skip as ``train`` does.

    Returns one RunResult per config, in order. A run another process is training comes back with
    status "busy" (not written to its folder); the others go on without it. ``index=False`` writes the
    run folders only, leaving the runs folder's index to the caller (as ``train`` does).
    """
    configs = [config.validated().resolved() for config in configs]
    keys = {group_key(config) for config in configs}
    if None in keys or len(keys) != 1:
        raise RethinkgenError("an ensemble needs runs without dropout that differ only in "
                              + ", ".join(GROUP_FREE) + "; train the others one by one")
    if distributed.from_environment().active:
        raise RethinkgenError("an ensemble does not train under torchrun; train its runs one by one there")
    log = log or (lambda message: tqdm.write(message) if progress else None)
    store = RunStore(runs_dir, index=index)
    copies = [_Copy(config, store) for config in configs]
    results: dict[str, RunResult] = {}
    pending = []
    for member in copies:
        summary_path = member.run_dir / "summary.json"
        previous = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        if previous.get("status") in FINISHED:
            results[member.run_id] = RunResult(member.run_id, member.run_dir, member.config, previous)
        elif member.run_id not in {m.run_id for m in pending}:
            pending.append(member)
    with contextlib.ExitStack() as locks:
        trainable = []
        for member in pending:
            member.run_dir.mkdir(exist_ok=True)
            try:
                locks.enter_context(run_lock(member.run_dir, member.run_id))
                trainable.append(member)
            except RunBusy as busy:
                results[member.run_id] = RunResult(member.run_id, member.run_dir, member.config,
                                                   {"status": "busy", "message": str(busy)})
        # copies resumed from different epochs cannot step together: train each such group on its own
        by_epoch: dict[int, list[_Copy]] = {}
        device = resolve_device(configs[0].device)
        for member in trainable:
            clean, randomized, record = prepare_data(member.config)
            open_run_dir(member.config, member.run_id, member.run_dir, record, len(randomized.y_train))
            member.data = DeviceData(clean, randomized, record, member.config, device)
            member.model = seeded_model(member.config, member.data, device)
            save_initial(member.model, member.run_dir)
            member.state = load_checkpoint(member.run_dir)
            # bf16 autocast when the run asks for it (it is part of the run); no channels_last or compile here
            member.speedups = Speedups.resolve(member.config.amp, "off", "off", device, member.model)
            member.base = summary_base(member.run_id, device, member.model, member.data, record, member.speedups)
            by_epoch.setdefault(len(member.state["history"]) if member.state else 0, []).append(member)
        _share_identical_inputs([member.data for member in trainable])
        for start_epoch, group in sorted(by_epoch.items()):
            _train_group(group, start_epoch, device, progress, log)
            for member in group:
                results[member.run_id] = member.result()
    return [results[config.run_id()] for config in configs]


def _share_identical_inputs(device_datas: list[DeviceData]) -> None:
    """Copies that train on the same images (e.g. differing only in labels) point at one tensor."""
    for i, current in enumerate(device_datas):
        for earlier in device_datas[:i]:
            for name in ("x_train_u8", "x_train", "x_test"):
                mine, theirs = getattr(current, name), getattr(earlier, name)
                if mine is not theirs and mine.shape == theirs.shape and torch.equal(mine, theirs):
                    setattr(current, name, theirs)


def _gradient_layout(stacked: torch.Tensor) -> torch.Tensor:
    """``stacked`` laid out as its gradient arrives: under ``vmap`` a linear layer's weight gradient comes
    transposed ([K, in, out] in memory), and autograd copies a gradient whose layout differs from its
    parameter's (10 ms a step for 11 MLPs on Fashion-MNIST, a quarter of the step). Same values."""
    if stacked.dim() != 3:  # only 2-D parameters (linear weights) per copy
        return stacked.detach()
    return stacked.detach().transpose(1, 2).contiguous().transpose(1, 2)


class _Stack:
    """The stacked weights, buffers and optimizer of the copies still training."""

    def __init__(self, members: list[_Copy], config: RunConfig):
        self.members, self.config, self.speedups = members, config, members[0].speedups
        self.template = copy.deepcopy(members[0].model).to("meta")
        params, self.buffers = stack_module_state([member.model for member in members])
        self.params = {name: _gradient_layout(p).requires_grad_() for name, p in params.items()}
        self.names = list(self.params)
        self.optimizer = self._optimizer()
        momenta = [member.state["optimizer"]["state"] if member.state else {} for member in members]
        for index, name in enumerate(self.names):
            if all(index in m for m in momenta) and all(m[index].get("momentum_buffer") is not None for m in momenta):
                stacked = torch.stack([m[index]["momentum_buffer"] for m in momenta])
                self.optimizer.state[self.params[name]]["momentum_buffer"] = \
                    torch.empty_like(self.params[name]).copy_(stacked)

    def _optimizer(self) -> torch.optim.SGD:
        return torch.optim.SGD(list(self.params.values()), lr=self.config.lr, momentum=self.config.momentum,
                               weight_decay=self.config.weight_decay)

    def forward(self, x: torch.Tensor, shared_input: bool = False) -> torch.Tensor:
        """Logits [K, batch, classes]; ``x`` is [K, batch, ...], or [batch, ...] seen by every copy."""
        def one(params, buffers, inputs):
            return functional_call(self.template, (params, buffers), (inputs,))
        with self.speedups.autocast(x.device):
            return vmap(one, in_dims=(0, 0, None if shared_input else 0))(self.params, self.buffers, x)

    def keep(self, keep: list[int]) -> None:
        """Drop the copies not in ``keep`` (diverged, or stopped at fit) and go on with the rest."""
        momenta = {name: self.optimizer.state[self.params[name]].get("momentum_buffer") for name in self.names}
        self.members = [self.members[i] for i in keep]
        self.params = {name: _gradient_layout(p.detach()[keep]).requires_grad_() for name, p in self.params.items()}
        self.buffers = {name: b[keep] for name, b in self.buffers.items()}
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer = self._optimizer()
        self.optimizer.param_groups[0]["lr"] = lr
        for name, momentum in momenta.items():
            if momentum is not None:
                self.optimizer.state[self.params[name]]["momentum_buffer"] = \
                    torch.empty_like(self.params[name]).copy_(momentum[keep])

    def checkpoint(self, index: int, step: int) -> dict:
        """Copy ``index``'s model and optimizer state, in exactly the form ``train.train`` saves."""
        member = self.members[index]
        state_dict = {name: (self.params[name] if name in self.params else self.buffers[name])[index].detach()
                      .clone(memory_format=torch.contiguous_format)
                      for name in member.model.state_dict()}
        member.model.load_state_dict(state_dict)
        optimizer = torch.optim.SGD(member.model.parameters(), lr=self.optimizer.param_groups[0]["lr"],
                                    momentum=self.config.momentum, weight_decay=self.config.weight_decay)
        for parameter, name in zip(member.model.parameters(), self.names):
            momentum = self.optimizer.state[self.params[name]].get("momentum_buffer")
            if momentum is not None:
                optimizer.state[parameter]["momentum_buffer"] = momentum[index].clone(memory_format=torch.contiguous_format)
        return {"model": state_dict, "optimizer": optimizer.state_dict(), "step": step}

    def evaluate(self, batch_size: int) -> list[dict]:
        """Each copy's metrics, as ``train.evaluate`` computes them for a run alone."""
        self.template.eval()
        datas = [member.data for member in self.members]
        batch_size = evaluation_plan(self.members[0].model, datas[0].x_train, batch_size, self.speedups)[0]
        with torch.no_grad():
            logits = {}
            for split in ("x_train", "x_test"):
                tensors = [getattr(d, split) for d in datas]
                shared = all(t is tensors[0] for t in tensors)
                chunks = []
                for start in range(0, len(tensors[0]), batch_size):
                    x = tensors[0][start:start + batch_size] if shared else \
                        torch.stack([t[start:start + batch_size] for t in tensors])
                    chunks.append(Speedups.full_precision(self.forward(x, shared_input=shared)))
                logits[split] = torch.cat(chunks, 1)
        for k, data in enumerate(datas):  # reused by the measures of a copy that completes now
            data.last_train_logits = None if self.speedups.amp else logits["x_train"][k]
        return [metrics_from_logits(logits["x_train"][k], logits["x_test"][k], d) for k, d in enumerate(datas)]


def _train_group(members: list[_Copy], start_epoch: int, device, progress: bool, log) -> None:
    config = members[0].config
    for member in members:
        if member.state:
            member.model.load_state_dict(member.state["model"])
            member.history, member.step_log, member.step = (member.state["history"], member.state["steps"],
                                                            member.state["step"])
            member.logged_steps = len(member.step_log)
        member.finish("running")
    if start_epoch:
        log(f"ensemble of {len(members)} runs: resuming after epoch {start_epoch}")
    stack = _Stack(members, config)
    n_train = len(members[0].data.y_train)
    wall_before = members[0].history[-1]["wall_seconds"] if members[0].history else 0.0
    epochs = tqdm(range(start_epoch, config.epochs), initial=start_epoch, total=config.epochs, disable=not progress,
                  desc=f"ensemble of {len(members)} {config.model}", leave=False, unit="epoch", dynamic_ncols=True)
    try:
        for epoch in epochs:
            if not stack.members:
                break
            started = time.perf_counter()
            lr = config.lr * config.lr_decay ** epoch
            stack.optimizer.param_groups[0]["lr"] = lr
            # drawn on the CPU on every device, as train.train draws them
            generators = [torch.Generator().manual_seed(epoch_seed(m.config.order_seed, epoch, "order"))
                          for m in stack.members]
            orders = [torch.randperm(n_train, generator=g).to(device) for g in generators]
            stack.template.train()
            count = len(stack.members)
            loss_sum, loss_count = torch.zeros(count, device=device), 0
            online_correct = torch.zeros(count, device=device, dtype=torch.long)
            for start in range(0, n_train, config.batch_size):
                indices = [order[start:start + config.batch_size] for order in orders]
                x = torch.stack([m.data.batch(i, g) for m, i, g in zip(stack.members, indices, generators)])
                y = torch.stack([m.data.y_train[i] for m, i in zip(stack.members, indices)])
                logits = stack.forward(x)
                # in float32, as autocast computes cross-entropy
                losses = F.cross_entropy(Speedups.full_precision(logits).flatten(0, 1), y.flatten(), reduction="none").view(count, -1).mean(1)
                online_correct += (logits.detach().argmax(2) == y).sum(1)
                stack.optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()  # copy k's weights get exactly the gradient of its own mean loss
                stack.optimizer.step()
                loss_sum += losses.detach()
                loss_count += 1
                step = stack.members[0].step + 1
                for member in stack.members:
                    member.step = step
                if step % config.log_every == 0:
                    means = (loss_sum / loss_count).tolist()
                    loss_sum, loss_count = torch.zeros(count, device=device), 0
                    keep = []
                    for k, (member, mean_loss) in enumerate(zip(stack.members, means)):
                        member.step_log.append({"step": step, "epoch": epoch + start / n_train, "loss": mean_loss})
                        if math.isfinite(mean_loss):
                            keep.append(k)
                        else:
                            _diverge(member, f"training loss became {mean_loss} at step {step} (epoch {epoch + 1})", log)
                    if len(keep) < count:
                        stack.keep(keep)
                        orders, generators = [orders[k] for k in keep], [generators[k] for k in keep]
                        loss_sum, online_correct, count = loss_sum[keep], online_correct[keep], len(keep)
                        if not count:
                            break
            if not stack.members:
                break
            train_seconds = time.perf_counter() - started
            all_metrics = stack.evaluate(config.eval_batch_size)
            wall_before += time.perf_counter() - started
            keep = []
            for k, (member, metrics) in enumerate(zip(stack.members, all_metrics)):
                if not math.isfinite(metrics["train_loss"]):
                    _diverge(member, f"training loss became {metrics['train_loss']} at step {member.step} "
                                     f"(epoch {epoch + 1})", log)
                    continue
                metrics["online_accuracy"] = online_correct[k].item() / n_train
                member.history.append({"epoch": epoch + 1, "step": member.step, "lr": lr, **metrics,
                                       "train_seconds": train_seconds, "images": n_train,
                                       "images_per_second": n_train / train_seconds, "wall_seconds": wall_before})
                member.logged_steps = save_epoch(member.run_dir, member.history, member.step_log, member.logged_steps,
                                                 stack.checkpoint(k, member.step))
                member.finish("running")
                if metrics["train_accuracy"] >= member.config.fit_threshold and member.config.stop_at_fit:
                    member.finish("complete", f"stopped at fit after epoch {epoch + 1}")
                else:
                    keep.append(k)
            if len(keep) < len(stack.members):
                stack.keep(keep)
            epochs.set_postfix(training=len(stack.members), refresh=False)
        for member in stack.members:
            member.finish("complete")
    except KeyboardInterrupt:
        for member in stack.members:
            member.finish("interrupted", "interrupted; run the same command again to resume")
        raise
    except Exception as error:
        for member in stack.members:
            member.finish("failed", f"{type(error).__name__}: {error}")
        raise
    finally:
        epochs.close()


def _diverge(member: _Copy, reason: str, log) -> None:
    append_jsonl(member.run_dir / "steps.jsonl", member.step_log[member.logged_steps:])
    member.finish("diverged", f"diverged: {reason}")
    log(f"run {member.run_id} diverged: {reason}")
