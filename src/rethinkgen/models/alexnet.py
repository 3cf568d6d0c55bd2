"""The paper's small AlexNet (App. A): two (conv 5x5, max-pool 3x3, LRN) modules, then FC 384, FC 192.

Channel widths (64, 64) and 'same' padding are not in the paper: they are the TensorFlow CIFAR-10
tutorial network, the configuration that reproduces the paper's 1,387,786 parameters exactly. LRN follows
the pool, as the paper orders it, with the tutorial's constants (depth radius 4, bias 1, alpha 0.001/9,
beta 0.75). PyTorch's LocalResponseNorm divides alpha by the window size, so alpha=0.001 with size=9.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from rethinkgen.models import register_model

ALEXNET_LR = 0.01  # App. A
CHANNELS = 64
LRN = dict(size=9, alpha=0.001, beta=0.75, k=1.0)


class LocalResponseNorm(nn.LocalResponseNorm):
    """PyTorch's LRN, computed with ``size`` shifted adds over the channels instead of ``avg_pool3d``: the
    same function (to float rounding, ~2e-7 relative), faster on the CPU (see docs/benchmarks.md). With
    the paper's beta = 0.75 the power is r·√r, r = window^-1/2 (3e-7 relative to ``pow`` in float32)."""

    def forward(self, x):
        """LRN of ``x``, ``[N, C, H, W]``, across channels."""
        channels = x.shape[1]
        padded = F.pad(x.square(), (0, 0, 0, 0, self.size // 2, (self.size - 1) // 2))
        window = padded[:, :channels].clone()
        for shift in range(1, self.size):
            window += padded[:, shift:shift + channels]
        window = window.mul_(self.alpha / self.size).add_(self.k)
        if self.beta == 0.75:
            root = window.rsqrt()
            return x * root * root.sqrt()
        return x / window.pow(self.beta)


class _MaxPoolViaChannelsLast(torch.autograd.Function):
    """3x3 max-pool of a contiguous CPU tensor computed on a channels_last copy, backward in the original
    layout from the same indices: the same values and gradients, bit for bit."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        out, indices = torch.ops.aten.max_pool2d_with_indices(x.contiguous(memory_format=torch.channels_last),
                                                              kernel, stride, padding)
        ctx.save_for_backward(x, indices.contiguous())
        ctx.settings = (kernel, stride, padding)
        return out.contiguous()

    @staticmethod
    def backward(ctx, grad):
        x, indices = ctx.saved_tensors
        kernel, stride, padding = ctx.settings
        return torch.ops.aten.max_pool2d_with_indices_backward(grad.contiguous(), x, kernel, stride, padding,
                                                               [1, 1], False, indices), None, None, None


class MaxPool2d(nn.MaxPool2d):
    """PyTorch's max-pool. On the CPU PyTorch's kernel for contiguous (NCHW) tensors is slower than its
    channels_last one (see docs/benchmarks.md), so a contiguous CPU input is pooled through a channels_last
    copy, with the same values and gradients. Under ``torch.func`` transforms (the ensemble's ``vmap``) it
    is PyTorch's own."""

    def forward(self, x):
        """The max-pool of ``x``, through a channels_last copy for a contiguous CPU batch."""
        if (x.device.type != "cpu" or x.dim() != 4 or not x.is_contiguous() or _transformed(x)
                or self.dilation not in (1, (1, 1)) or self.ceil_mode or self.return_indices):
            return super().forward(x)
        return _MaxPoolViaChannelsLast.apply(x, _pair(self.kernel_size), _pair(self.stride), _pair(self.padding))


class Conv2d(nn.Conv2d):
    """PyTorch's conv. On the CPU the 64-channel conv runs on a contiguous input: evaluation feeds the
    network channels_last images, which suit the first conv (3 input channels), but oneDNN runs the second
    one faster contiguous (see docs/benchmarks.md). Training inputs are contiguous already; only the order
    of floating-point work changes."""

    def forward(self, x):
        """The convolution of ``x``, made contiguous first for a 64-channel conv on the CPU."""
        if x.device.type == "cpu" and self.in_channels >= CHANNELS:
            x = x.contiguous()
        return super().forward(x)


def _transformed(x) -> bool:
    """Whether ``x`` is wrapped by a ``torch.func`` transform (vmap, grad), where a plain autograd.Function
    cannot run."""
    return torch._C._functorch.is_functorch_wrapped_tensor(x)


def _pooled(size: int) -> int:
    """Spatial size after a 3x3, stride-2 max-pool with padding 1 ('same')."""
    return (size - 1) // 2 + 1


@register_model("alexnet-small", ALEXNET_LR, "small AlexNet with LRN (1,387,786 params at 3x28x28)")
def alexnet_small(input_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """The paper's small AlexNet: two conv, max-pool and LRN blocks, then two hidden fully connected layers.

    Args:
        input_shape: one image's shape, (C, H, W).
        num_classes: the number of outputs.
        dropout: the dropout probability after each hidden layer (0: none).
    """
    channels, height, width = input_shape
    flat = CHANNELS * _pooled(_pooled(height)) * _pooled(_pooled(width))
    block = lambda c_in: [  # noqa: E731
        Conv2d(c_in, CHANNELS, 5, padding=2), nn.ReLU(inplace=True),
        MaxPool2d(3, stride=2, padding=1), LocalResponseNorm(**LRN)]
    head_dropout = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(
        *block(channels), *block(CHANNELS), nn.Flatten(),
        nn.Linear(flat, 384), nn.ReLU(inplace=True), *head_dropout,
        nn.Linear(384, 192), nn.ReLU(inplace=True), *head_dropout,
        nn.Linear(192, num_classes))
