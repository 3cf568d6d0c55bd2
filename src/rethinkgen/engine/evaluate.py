"""Evaluation: a model's logits on a set of inputs, and the epoch-end metrics computed from them.

Every part of rethinkgen that evaluates a network calls :func:`predict`: the trainer (one run, or each
copy of an ensemble through :func:`metrics_from_logits`), streamed image folders, the complexity
measures and the theory's trained networks.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from rethinkgen.engine.speedups import Speedups, has_convolutions

CPU_CONV_EVAL_CHUNK = 128  # see evaluation_plan
TOP5 = 5  # top-5 accuracy is recorded when there are more classes than this (Table 2 reports it)


def evaluation_plan(model: nn.Module, x: torch.Tensor, batch_size: int, speedups: Speedups) -> tuple[int, Speedups]:
    """The batch size and switches with which to evaluate ``model`` on ``x``.

    Conv nets on the CPU are evaluated in chunks of at most ``CPU_CONV_EVAL_CHUNK`` images with
    channels_last inputs, which is faster there; both change only the order of floating-point work,
    never which images are evaluated. Anything else keeps ``batch_size`` and ``speedups``.

    Args:
        model: the network to evaluate (its layers decide whether it is a conv net).
        x: the inputs, on the device that evaluates.
        batch_size: the largest number of inputs per forward pass the caller asks for.
        speedups: the run's GPU switches.
    """
    if x.device.type == "cpu" and x.dim() == 4 and has_convolutions(model):
        return min(batch_size, CPU_CONV_EVAL_CHUNK), dataclasses.replace(speedups, channels_last=True)
    return batch_size, speedups


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int, speedups: Speedups = Speedups(),
            plan: bool = True) -> torch.Tensor:
    """The logits of ``model`` on ``x`` in evaluation mode, in full precision, without gradients.

    The model's training mode is restored afterwards.

    Args:
        model: the network (any module mapping a batch of inputs to logits).
        x: the inputs, ``[n, ...]``, on the model's device.
        batch_size: how many inputs one forward pass takes.
        speedups: the GPU switches to apply (bf16 autocast, channels_last inputs).
        plan: apply :func:`evaluation_plan` (the trainer's choice); ``False`` evaluates with exactly
            ``batch_size`` and ``speedups``, as the measures and the theory do.

    Returns:
        The logits, ``[n, classes]``: float32 under bf16 autocast, else the model's own dtype.
    """
    was_training = model.training
    model.eval()
    if plan:
        batch_size, speedups = evaluation_plan(model, x, batch_size, speedups)
    try:
        with speedups.autocast(x.device):
            return torch.cat([speedups.full_precision(model(speedups.inputs(x[i:i + batch_size])))
                              for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def metrics_from_logits(logits: torch.Tensor, test_logits: torch.Tensor, data) -> dict:
    """Loss and accuracy (top-1, and top-5 with more than ``TOP5`` classes) on the training set, on the
    original labels of the training examples whose label changed, and on the test set.

    Args:
        logits: the logits of the whole training set, ``[n_train, classes]``.
        test_logits: the logits of the whole test set, ``[n_test, classes]``.
        data: the labels: an object with ``y_train``, ``y_test`` (the labels trained and tested on),
            ``changed`` (indices of the training examples whose label was changed) and
            ``y_changed_original`` (their original labels), all tensors on the logits' device
            (a ``DeviceData``).

    Returns:
        ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``, ``train_top5_accuracy``,
        ``test_top5_accuracy`` (None with 5 classes or fewer), and the training accuracy split by changed
        labels (:func:`memorization`'s keys).
    """
    result = {
        "train_loss": F.cross_entropy(logits, data.y_train).item(),
        "train_accuracy": (logits.argmax(1) == data.y_train).float().mean().item(),
        "test_loss": F.cross_entropy(test_logits, data.y_test).item(),
        "test_accuracy": (test_logits.argmax(1) == data.y_test).float().mean().item(),
        "train_top5_accuracy": fraction(top5_correct(logits, data.y_train), len(data.y_train)),
        "test_top5_accuracy": fraction(top5_correct(test_logits, data.y_test), len(data.y_test)),
    }
    return {**result, **memorization(logits.argmax(1), data.y_train, data.changed, data.y_changed_original)}


def memorization(guesses: torch.Tensor, labels: torch.Tensor, changed: torch.Tensor,
                 original: torch.Tensor) -> dict:
    """The training accuracy split by whether an example's label was changed (Arpit et al. 2017: with
    label noise a network first fits the unchanged examples, then memorizes the changed ones).

    Args:
        guesses: the predicted class of every training example, ``[n_train]``.
        labels: the labels trained on, ``[n_train]`` (the changed ones included).
        changed: the indices of the training examples whose label was changed.
        original: the original labels of the ``changed`` examples, in the same order.

    Returns:
        ``unchanged_accuracy`` (on the examples whose label was not changed), ``changed_accuracy`` (the
        changed examples against their new labels: what the network memorized) and
        ``changed_original_accuracy`` (the changed examples against their original labels), all None when
        no label changed. The first two, weighted by their counts, add up to the training accuracy.
    """
    if not len(changed):
        return {"unchanged_accuracy": None, "changed_accuracy": None, "changed_original_accuracy": None}
    right = guesses == labels
    unchanged = torch.ones_like(right)
    unchanged[changed] = False
    return {"unchanged_accuracy": fraction(right[unchanged].sum().item(), int(unchanged.sum().item())),
            "changed_accuracy": right[changed].float().mean().item(),
            "changed_original_accuracy": (guesses[changed] == original).float().mean().item()}


def top5_correct(logits: torch.Tensor, labels: torch.Tensor) -> int | None:
    """How many ``labels`` are among the 5 largest ``logits`` of their row; None with 5 classes or fewer
    (where they always are)."""
    if logits.shape[1] <= TOP5:
        return None
    return (logits.topk(TOP5, dim=1).indices == labels[:, None]).any(1).sum().item()


def fraction(count: int | None, total: int) -> float | None:
    """``count / total``; None when ``count`` is None or ``total`` is 0."""
    return None if count is None or not total else count / total
