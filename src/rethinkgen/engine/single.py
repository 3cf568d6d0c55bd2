"""The step of one run: one model and its SGD optimizer, in one process or data-parallel under torchrun.

The GPU switches (bf16 autocast, channels_last, ``torch.compile``, see ``rethinkgen.engine.speedups``) and the
distributed context (``rethinkgen.engine.distributed``: DistributedDataParallel, each rank's shard of every
global batch, rank 0 alone evaluating) live here; outside torchrun the context is the identity.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from rethinkgen.config import RunConfig
from rethinkgen.engine.distributed import Context
from rethinkgen.engine.seeds import epoch_seed
from rethinkgen.engine.speedups import Speedups


class SingleStepper:
    """Trains one run (K = 1) for ``engine.loop.train_epochs``.

    Args:
        config: the run's resolved settings.
        data: its training data on the device (``DeviceData``, or ``StreamedData`` in one process).
        model: its network at initialization, on ``device``.
        device: the training device (each rank's own under torchrun).
        ctx: the distributed context (``distributed.SINGLE`` in one process).

    Attributes:
        model: the module that holds the weights (batch norm synchronized across GPUs under torchrun);
            its state dict is what a checkpoint saves.
        speedups: the GPU switches as they apply to this run.
    """

    def __init__(self, config: RunConfig, data, model: torch.nn.Module, device: torch.device, ctx: Context):
        self.config, self.data, self.device, self.ctx = config, data, device, ctx
        self.speedups = Speedups.resolve(config.amp, config.channels_last, config.compile, device, model)
        self.model = ctx.sync_batchnorm(model, device)
        if self.speedups.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.net = torch.compile(self.model) if self.speedups.compile else self.model  # what evaluates (on rank 0)
        self.trained = ctx.data_parallel(self.net, device)  # what trains: net itself in one process
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)

    def load(self, state: dict | None) -> None:
        """Take the weights and optimizer state of a checkpoint (None: keep the initialization)."""
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])

    def begin_epoch(self, epoch: int, lr: float, draws: list[tuple[torch.Generator, torch.Tensor]]) -> None:
        """Set the epoch's learning rate, order and augmentation draws, and dropout's seed.

        Args:
            epoch: the epoch about to start, from 0.
            lr: its learning rate.
            draws: one (augmentation generator, order of the training examples) pair: the run's.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        (self.generator, self.order), = draws
        # the order and augmentation come from the CPU on every device; dropout from each device's own
        torch.manual_seed(epoch_seed(self.config.init_seed, epoch, self.ctx.stream("dropout")))
        self.trained.train()
        self._reset_losses()
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)

    def _reset_losses(self) -> None:
        self.loss_sum, self.loss_count = torch.zeros((), device=self.device), 0

    def steps(self) -> Iterator[int]:
        """Train on the epoch's minibatches, yielding after each optimizer step."""
        batches = self.data.batches(self.order, self.generator, self.config.batch_size, self.ctx.part)
        for images, labels, global_size in batches:
            with self.speedups.autocast(self.device):
                logits = self.trained(self.speedups.inputs(images))
                loss = self.ctx.batch_loss(logits, labels, global_size)
            self.correct += (logits.detach().argmax(1) == labels).sum()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.loss_sum += loss.detach()
            self.loss_count += 1
            yield global_size

    def mean_losses(self) -> list[float]:
        """The mean training loss since the last call (over all processes), as a one-item list; resets it."""
        mean = (self.ctx.all_mean(self.loss_sum) / self.loss_count).item()
        self._reset_losses()
        return [mean]

    def online_correct(self) -> list[int]:
        """How many training examples the epoch's minibatches classified right as they trained, as a one-item list."""
        return [self.ctx.all_sum(self.correct).item()]

    def evaluate(self) -> list[dict]:
        """The epoch-end metrics of the run (``metrics_from_logits``), as a one-item list; computed on rank 0."""
        return self.ctx.on_main(lambda: [self.data.evaluate(self.net, self.config.eval_batch_size, self.speedups)])

    def checkpoint(self, k: int) -> dict:
        """The model's and the optimizer's state for the run's checkpoint.

        Args:
            k: the copy's index (always 0: one run).
        """
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def keep(self, indices: list[int]) -> None:
        """Nothing to drop: a run that stops ends the loop."""

    def on_main(self, work: Callable):
        """``work()`` on rank 0, its result shared with every process.

        Args:
            work: what to do.
        """
        return self.ctx.on_main(work)
