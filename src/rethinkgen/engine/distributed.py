"""One run trained data-parallel by several processes, launched by ``torchrun`` (torch.distributed).

``torchrun --nproc-per-node N -m rethinkgen run ...`` starts N processes (ranks) and tells each its
RANK, WORLD_SIZE and LOCAL_RANK. Every rank loads the data and draws the same randomization (it is
seeded; the ranks compare its hash), the same data order and the same augmentation draws, then trains on
its own contiguous shard of every global batch: ``batch_size`` stays the global batch, split as evenly as
integers allow. DistributedDataParallel averages the gradients (gloo on CPU, NCCL on GPU), so a step
is the step one process takes on the whole batch, up to floating point. On GPU, batch norm is synchronized
across ranks (SyncBatchNorm) so that it normalizes over the global batch; on CPU PyTorch has no
SyncBatchNorm and each rank normalizes over its own shard. Rank 0 alone evaluates, holds the run lock and
writes the run folder; the other ranks wait for its results.

Outside torchrun the context is a single process and every method here is the identity, so the
single-process trainer computes exactly what it computed before this module existed.
"""

from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from rethinkgen.errors import RethinkgenError

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
TIMEOUT = datetime.timedelta(minutes=30)  # how long ranks wait for rank 0's evaluation and checkpoint


@dataclass(frozen=True)
class Context:
    """This process's place in a torchrun job (rank, local rank, world size); ``SINGLE`` outside one."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """Whether more than one process trains the run."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes the run folder."""
        return self.rank == 0

    # ------------------------------------------------------------------ setup
    def device(self, device: torch.device) -> torch.device:
        """Each rank's own GPU (cuda:LOCAL_RANK); the CPU is shared."""
        if not self.active or device.type != "cuda":
            return device
        if device.index is not None:
            raise RethinkgenError(f"device {str(device)!r} under torchrun: use --device cuda or auto; "
                                  "each rank takes the GPU of its LOCAL_RANK")
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def join(self, device_type: str) -> None:
        """Join the process group (NCCL on GPU, gloo on CPU) unless this process already has one. It lives
        as long as the process: under torchrun a second group in the same process never forms."""
        if not self.active or dist.is_initialized():
            return
        if device_type == "cuda":
            torch.cuda.set_device(self.local_rank)  # before any collective: NCCL uses the current GPU
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=TIMEOUT)
        atexit.register(dist.destroy_process_group)

    # ------------------------------------------------------------------ rank 0 decides, the others follow
    def on_main(self, work):
        """Run ``work()`` on rank 0 and give its result (or its exception) to every rank."""
        if not self.active:
            return work()
        if self.is_main:
            try:
                result = work()
            except BaseException as error:
                try:  # best effort: after Ctrl-C the other ranks may have stopped already
                    self._broadcast(_Failure(type(error).__name__, str(error), isinstance(error, RethinkgenError),
                                             isinstance(error, KeyboardInterrupt)))
                except Exception:
                    pass
                raise
            return self._broadcast(result)
        result = self._broadcast(None)
        if isinstance(result, _Failure):
            raise result.rebuild()
        return result

    def _broadcast(self, value):
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def check_same(self, value, what: str) -> None:
        """Raise unless every rank holds the same ``value`` (e.g. the randomization record's hash)."""
        if not self.active:
            return
        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        if len(set(values)) > 1:
            raise RethinkgenError(f"the ranks disagree on the {what}: {', '.join(map(str, values))}; "
                                  "every rank must see the same data and settings")

    # ------------------------------------------------------------------ training
    def stream(self, name: str) -> str:
        """A random stream of this rank: rank 0 keeps the single-process name, so its draws stay the same."""
        return name if self.rank == 0 else f"{name}:rank{self.rank}"

    def part(self, n: int) -> slice:
        """This rank's contiguous shard of a global batch of ``n``: sizes differ by at most one."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def batch_loss(self, logits: torch.Tensor, labels: torch.Tensor, batch_size: int) -> torch.Tensor:
        """The loss whose gradient, averaged over the ranks by DDP, is that of the global batch's mean loss."""
        if not self.active:
            return F.cross_entropy(logits, labels)
        return F.cross_entropy(logits, labels, reduction="sum") * (self.world_size / batch_size)

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over all processes (a copy; ``tensor`` itself outside torchrun).

        Args:
            tensor: this process's part.
        """
        if not self.active:
            return tensor
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    def all_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` averaged over all processes (``tensor`` itself outside torchrun).

        Args:
            tensor: this process's part.
        """
        return self.all_sum(tensor) / self.world_size if self.active else tensor

    def sync_batchnorm(self, model: nn.Module, device: torch.device) -> nn.Module:
        """Batch norm over the global batch; PyTorch offers this on GPU only."""
        if self.active and device.type == "cuda":
            return nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def data_parallel(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` wrapped in DistributedDataParallel under torchrun, else ``model`` itself.

        Args:
            model: the network on this process's device.
            device: that device (a GPU gives DDP its device id).
        """
        if not self.active:
            return model
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


SINGLE = Context()


@dataclass(frozen=True)
class _Failure:
    """What rank 0 raised, rebuilt on the other ranks so that they stop the same way."""

    kind: str
    message: str
    user_error: bool
    interrupt: bool

    def rebuild(self) -> BaseException:
        if self.interrupt:
            return KeyboardInterrupt()
        if self.user_error:
            return RethinkgenError(self.message)
        return RuntimeError(f"rank 0 failed: {self.kind}: {self.message}")


def from_environment() -> Context:
    """The context torchrun describes in RANK, WORLD_SIZE and LOCAL_RANK; one process without them."""
    if "WORLD_SIZE" not in os.environ:
        return SINGLE
    values = {}
    for name in ENV:
        text = os.environ.get(name, "0")
        if not text.isdigit():
            raise RethinkgenError(f"environment variable {name}={text!r} must be a non-negative integer")
        values[name] = int(text)
    if values["WORLD_SIZE"] < 1 or values["RANK"] >= values["WORLD_SIZE"]:
        raise RethinkgenError(f"RANK={values['RANK']} and WORLD_SIZE={values['WORLD_SIZE']}: need "
                              "0 <= RANK < WORLD_SIZE")
    if values["WORLD_SIZE"] == 1:
        return SINGLE
    return Context(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
