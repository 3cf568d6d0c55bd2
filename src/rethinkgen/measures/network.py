"""The network as the measures see it: batch norm folded in, and the squared network of the path norm."""

from __future__ import annotations

import copy

import torch
from torch import nn

from rethinkgen.measures import MeasureUnavailable
from rethinkgen.models.inception import BatchNormShift

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCH_NORMS = (nn.modules.batchnorm._BatchNorm, BatchNormShift)
# parameter-free layers the path norm passes through: ReLU is the identity on the non-negative values of
# the squared network; dropout is off at evaluation; LRN is treated as the identity (see path_norm_network)
PASS_THROUGH = (nn.ReLU, nn.Flatten, nn.Identity, nn.Dropout, nn.Dropout2d, nn.MaxPool1d, nn.MaxPool2d,
                nn.LocalResponseNorm)
AVERAGE_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)


def batch_norm_affine(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of a batch norm layer at evaluation: y = scale * x + shift, per channel."""
    inner = norm.norm if isinstance(norm, BatchNormShift) else norm
    if inner.running_var is None:
        raise MeasureUnavailable(f"{type(norm).__name__} keeps no running statistics, so it cannot be folded")
    scale = 1.0 / torch.sqrt(inner.running_var + inner.eps)
    shift = -inner.running_mean * scale
    if isinstance(norm, BatchNormShift):
        shift = shift + norm.shift
    elif inner.affine:
        scale, shift = scale * inner.weight, shift * inner.weight + inner.bias
    return scale.detach(), shift.detach()


@torch.no_grad()
def fold_batch_norm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode in which each batch norm directly after a conv or linear layer
    (its next sibling in an ``nn.Sequential``) is folded into that layer and replaced by the identity.

    The copy computes the same function as ``model.eval()``. Raises MeasureUnavailable if a batch norm
    is left that could not be folded.
    """
    folded = copy.deepcopy(model).eval()
    for parent in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        names = list(parent._modules)
        for first, second in zip(names, names[1:]):
            layer, norm = parent._modules[first], parent._modules[second]
            if isinstance(layer, WEIGHTED) and isinstance(norm, BATCH_NORMS):
                scale, shift = batch_norm_affine(norm)
                shape = (-1,) + (1,) * (layer.weight.dim() - 1)
                layer.weight.mul_(scale.reshape(shape))
                bias = layer.bias.detach() * scale + shift if layer.bias is not None else shift
                layer.bias = nn.Parameter(bias.clone())
                parent._modules[second] = nn.Identity()
    left = [type(m).__name__ for m in folded.modules() if isinstance(m, BATCH_NORMS)]
    if left:
        raise MeasureUnavailable(f"{left[0]} does not directly follow a conv or linear layer, so it cannot be folded")
    return folded


class _SquaredAverage(nn.Module):
    """An average pool with its coefficient squared: (1/k)^2 per path instead of 1/k."""

    def __init__(self, pool: nn.Module):
        super().__init__()
        self.pool = pool

    def forward(self, x):
        out = self.pool(x)
        if isinstance(self.pool, (nn.AvgPool1d, nn.AvgPool2d)):
            window = torch.tensor(self.pool.kernel_size).prod().item()
        else:  # adaptive: the window is the input size over the output size
            window = x[0, 0].numel() / out[0, 0].numel()
        return out / window


@torch.no_grad()
def path_norm_network(network: nn.Module) -> nn.Module:
    """A copy of the (folded) network with every weight and bias squared and every average pool's
    coefficient squared. On an all-ones input its outputs sum to the squared path-l2 norm.

    Exact for networks of linear and conv layers, ReLU, average pools, concatenation and addition
    (Neyshabur et al. 2015). Approximations, said here once: a max pool passes on the largest of its
    window, i.e. only the heaviest path through it counts; LRN (``alexnet-small``) is treated as the
    identity, since its divisor is a data-dependent rescaling, not a path weight. Any other layer with
    parameters, or any other nonlinearity, makes the path norm unavailable.
    """
    squared = nn.Sequential(copy.deepcopy(network)).eval()  # a parent for every layer, the top one included
    for parent in list(squared.modules()):
        for name, child in list(parent._modules.items()):
            if isinstance(child, WEIGHTED):
                child.weight.square_()
                if child.bias is not None:
                    child.bias.square_()
            elif isinstance(child, AVERAGE_POOLS):
                parent._modules[name] = _SquaredAverage(child)
            elif isinstance(child, (nn.Dropout, nn.Dropout2d, nn.LocalResponseNorm)):
                parent._modules[name] = nn.Identity()
            elif not list(child.children()) and not isinstance(child, PASS_THROUGH):
                raise MeasureUnavailable(f"the path norm is defined here for ReLU networks of conv, linear and "
                                         f"pooling layers; {type(child).__name__} is none of those")
    return squared
