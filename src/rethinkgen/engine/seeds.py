"""The random draws of an epoch, each from its own seed derived from (seed, epoch, stream).

Every draw of an epoch comes from the run's seeds and the epoch number alone, so a run resumed from its
last checkpoint draws exactly what a run that was never interrupted draws.
"""

from __future__ import annotations

import hashlib

import torch


def epoch_seed(seed: int, epoch: int, stream: str) -> int:
    """A 63-bit seed for one stream of one epoch, independent of every other (seed, epoch, stream).

    Args:
        seed: the run's seed for this kind of draw (e.g. its order seed).
        epoch: the epoch, counted from 0.
        stream: the name of the draw (``"order"``, ``"dropout"``, ...).
    """
    digest = hashlib.sha256(f"{seed}:{epoch}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def epoch_order(seed: int, epoch: int, n: int, device=None) -> tuple[torch.Generator, torch.Tensor]:
    """The data order of one epoch and the CPU generator that drew it (augmentation draws go on from it).

    The order is drawn on the CPU on every device, so a GPU run sees the batches a CPU run sees.

    Args:
        seed: the run's order seed.
        epoch: the epoch, counted from 0.
        n: the number of training examples.
        device: where the order is wanted (the training device); None keeps it on the CPU.

    Returns:
        ``(generator, order)``: the generator, and a permutation of ``range(n)`` on ``device``.
    """
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch, "order"))
    order = torch.randperm(n, generator=generator)
    return generator, order if device is None else order.to(device)
