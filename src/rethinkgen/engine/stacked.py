"""The step of K copies of one architecture trained as one batched model (``torch.func.vmap``).

The copies' weights are stacked (``torch.func.stack_module_state``) and one ``vmap``-ed forward and
backward pass trains all of them at once, with one optimizer step over the stacked tensors (SGD is
elementwise, so each copy gets exactly its own update). Each copy keeps its own data, data order,
augmentation draws and labels; its checkpoints have exactly the form of a run trained alone.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from rethinkgen.config import RunConfig
from rethinkgen.engine.data import DeviceData
from rethinkgen.engine.evaluate import evaluation_plan, metrics_from_logits
from rethinkgen.engine.speedups import Speedups


def _gradient_layout(stacked: torch.Tensor) -> torch.Tensor:
    """``stacked`` laid out as its gradient arrives: under ``vmap`` a linear layer's weight gradient comes
    transposed ([K, in, out] in memory), and autograd copies a gradient whose layout differs from its
    parameter's. Same values."""
    if stacked.dim() != 3:  # only 2-D parameters (linear weights) per copy
        return stacked.detach()
    return stacked.detach().transpose(1, 2).contiguous().transpose(1, 2)


class StackedStepper:
    """Trains K runs of one architecture at once for ``engine.loop.train_epochs``.

    Args:
        models: the copies' networks (one architecture, no dropout), each holding its starting weights.
            Copy ``k``'s weights are copied back into ``models[k]`` whenever it is checkpointed.
        datas: each copy's ``DeviceData`` (copies with equal images may share their tensors).
        optimizer_states: each copy's optimizer state dict from its checkpoint, or None for a fresh copy.
        config: the settings the copies share (learning rate, momentum, weight decay, batch sizes).
        speedups: the GPU switches (bf16 autocast; no channels_last or compile under ``vmap``).
        device: the training device.
    """

    def __init__(self, models: list[torch.nn.Module], datas: list[DeviceData], optimizer_states: list[dict | None],
                 config: RunConfig, speedups: Speedups, device: torch.device):
        self.models, self.datas, self.config, self.speedups, self.device = models, datas, config, speedups, device
        self.template = copy.deepcopy(models[0]).to("meta")
        params, self.buffers = stack_module_state(models)
        self.params = {name: _gradient_layout(p).requires_grad_() for name, p in params.items()}
        self.names = list(self.params)
        self.optimizer = self._optimizer()
        momenta = [state["state"] if state else {} for state in optimizer_states]
        for index, name in enumerate(self.names):
            if all(index in m for m in momenta) and all(m[index].get("momentum_buffer") is not None for m in momenta):
                self._set_momentum(name, torch.stack([m[index]["momentum_buffer"] for m in momenta]))

    def _optimizer(self) -> torch.optim.SGD:
        return torch.optim.SGD(list(self.params.values()), lr=self.config.lr, momentum=self.config.momentum,
                               weight_decay=self.config.weight_decay)

    def _set_momentum(self, name: str, stacked: torch.Tensor) -> None:
        """The momentum buffer of a stacked parameter, laid out as the parameter is."""
        self.optimizer.state[self.params[name]]["momentum_buffer"] = torch.empty_like(self.params[name]).copy_(stacked)

    def forward(self, x: torch.Tensor, shared_input: bool = False) -> torch.Tensor:
        """Logits [K, batch, classes]; ``x`` is [K, batch, ...], or [batch, ...] seen by every copy."""
        def one(params, buffers, inputs):
            return functional_call(self.template, (params, buffers), (inputs,))
        with self.speedups.autocast(x.device):
            return vmap(one, in_dims=(0, 0, None if shared_input else 0))(self.params, self.buffers, x)

    def begin_epoch(self, epoch: int, lr: float, draws: list[tuple[torch.Generator, torch.Tensor]]) -> None:
        """Set the epoch's learning rate and each copy's order and augmentation draws.

        Args:
            epoch: the epoch about to start, from 0.
            lr: its learning rate (the same for every copy).
            draws: one (augmentation generator, order of the training examples) pair per copy.
        """
        self.optimizer.param_groups[0]["lr"] = lr
        self.generators, self.orders = [g for g, _ in draws], [order for _, order in draws]
        self.template.train()
        self.loss_sum, self.loss_count = torch.zeros(len(self.models), device=self.device), 0
        self.correct = torch.zeros(len(self.models), device=self.device, dtype=torch.long)

    def steps(self) -> Iterator[int]:
        """One step per batch; each copy's weights get exactly the gradient of its own mean loss."""
        for start in range(0, self.datas[0].num_train, self.config.batch_size):
            indices = [order[start:start + self.config.batch_size] for order in self.orders]
            x = torch.stack([d.batch(i, g) for d, i, g in zip(self.datas, indices, self.generators)])
            y = torch.stack([d.y_train[i] for d, i in zip(self.datas, indices)])
            logits = self.forward(x)
            # in float32, as autocast computes cross-entropy
            losses = F.cross_entropy(Speedups.full_precision(logits).flatten(0, 1), y.flatten(),
                                     reduction="none").view(len(self.models), -1).mean(1)
            self.correct += (logits.detach().argmax(2) == y).sum(1)
            self.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            self.optimizer.step()
            self.loss_sum += losses.detach()
            self.loss_count += 1
            yield len(indices[0])

    def mean_losses(self) -> list[float]:
        """Each copy's mean training loss since the last call; resets them."""
        means = (self.loss_sum / self.loss_count).tolist()
        self.loss_sum, self.loss_count = torch.zeros(len(self.models), device=self.device), 0
        return means

    def online_correct(self) -> list[int]:
        """For each copy, how many training examples its minibatches classified right as they trained."""
        return self.correct.tolist()

    def keep(self, indices: list[int]) -> None:
        """Drop the copies not at ``indices`` (diverged, or stopped at fit) and go on with the rest."""
        momenta = {name: self.optimizer.state[self.params[name]].get("momentum_buffer") for name in self.names}
        self.models, self.datas = [self.models[i] for i in indices], [self.datas[i] for i in indices]
        self.generators, self.orders = [self.generators[i] for i in indices], [self.orders[i] for i in indices]
        self.loss_sum, self.correct = self.loss_sum[indices], self.correct[indices]
        self.params = {name: _gradient_layout(p.detach()[indices]).requires_grad_() for name, p in self.params.items()}
        self.buffers = {name: b[indices] for name, b in self.buffers.items()}
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer = self._optimizer()
        self.optimizer.param_groups[0]["lr"] = lr
        for name, momentum in momenta.items():
            if momentum is not None:
                self._set_momentum(name, momentum[indices])

    def checkpoint(self, k: int) -> dict:
        """Copy ``k``'s weights into ``models[k]``; its model and optimizer state as a run alone saves them."""
        model = self.models[k]
        state_dict = {name: (self.params[name] if name in self.params else self.buffers[name])[k].detach()
                      .clone(memory_format=torch.contiguous_format) for name in model.state_dict()}
        model.load_state_dict(state_dict)
        optimizer = torch.optim.SGD(model.parameters(), lr=self.optimizer.param_groups[0]["lr"],
                                    momentum=self.config.momentum, weight_decay=self.config.weight_decay)
        for parameter, name in zip(model.parameters(), self.names):
            momentum = self.optimizer.state[self.params[name]].get("momentum_buffer")
            if momentum is not None:
                optimizer.state[parameter]["momentum_buffer"] = momentum[k].clone(memory_format=torch.contiguous_format)
        return {"model": state_dict, "optimizer": optimizer.state_dict()}

    @torch.no_grad()
    def evaluate(self) -> list[dict]:
        """Each copy's metrics, as a run alone computes them (``engine.evaluate.metrics_from_logits``)."""
        self.template.eval()
        batch_size = evaluation_plan(self.models[0], self.datas[0].x_train, self.config.eval_batch_size,
                                     self.speedups)[0]
        logits = {split: self._logits([getattr(d, split) for d in self.datas], batch_size)
                  for split in ("x_train", "x_test")}
        for k, data in enumerate(self.datas):  # reused by the measures of a copy that completes now
            data.last_train_logits = None if self.speedups.amp else logits["x_train"][k]
        return [metrics_from_logits(logits["x_train"][k], logits["x_test"][k], d) for k, d in enumerate(self.datas)]

    def _logits(self, tensors: list[torch.Tensor], batch_size: int) -> torch.Tensor:
        """The copies' logits [K, n, classes] on their inputs (one tensor when they all share it)."""
        shared = all(t is tensors[0] for t in tensors)
        chunks = []
        for start in range(0, len(tensors[0]), batch_size):
            x = tensors[0][start:start + batch_size] if shared else \
                torch.stack([t[start:start + batch_size] for t in tensors])
            chunks.append(Speedups.full_precision(self.forward(x, shared_input=shared)))
        return torch.cat(chunks, 1)

    def on_main(self, work: Callable):
        """``work()`` (an ensemble trains in one process).

        Args:
            work: what to do.
        """
        return work()
