"""Multi-layer perceptrons of App. A: MLP 1x512 and MLP 3x512 (ReLU, with biases)."""

from __future__ import annotations

import math

from torch import nn

from rethinkgen.models import ModelEntry, register_family, register_model

MLP_LR = 0.01  # App. A
HIDDEN = 512


def mlp(input_shape, num_classes: int, depth: int, width: int = HIDDEN, dropout: float = 0.0) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` ReLU units (with biases) on the flattened image of ``input_shape``,
    then a linear layer to ``num_classes`` logits; ``dropout`` after each hidden layer (0 = off)."""
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        fan_in = width
    layers.append(nn.Linear(fan_in, num_classes))
    return nn.Sequential(*layers)


@register_model("mlp-1x512", MLP_LR, "one hidden layer of 512 ReLU units (1,209,866 params at 3x28x28)")
def mlp_1x512(input_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """A multilayer perceptron with one hidden layer of 512 ReLU units.

    Args:
        input_shape: one image's shape, (C, H, W).
        num_classes: the number of outputs.
        dropout: the dropout probability after each hidden layer (0: none).
    """
    return mlp(input_shape, num_classes, depth=1, dropout=dropout)


@register_model("mlp-3x512", MLP_LR, "three hidden layers of 512 ReLU units (1,735,178 params at 3x28x28)")
def mlp_3x512(input_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """A multilayer perceptron with three hidden layers of 512 ReLU units.

    Args:
        input_shape: one image's shape, (C, H, W).
        num_classes: the number of outputs.
        dropout: the dropout probability after each hidden layer (0: none).
    """
    return mlp(input_shape, num_classes, depth=3, dropout=dropout)


@register_family("mlp-DxW")
def mlp_entry(depth: int, width: int) -> ModelEntry:
    """The family member ``mlp-<depth>x<width>``: ``depth`` hidden layers of ``width`` ReLU units (what a
    model-size sweep varies; mlp-1x512 and mlp-3x512 are its members the paper uses)."""
    def factory(input_shape, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
        return mlp(input_shape, num_classes, depth=depth, width=width, dropout=dropout)
    return ModelEntry(f"mlp-{depth}x{width}", factory, MLP_LR, f"{depth} hidden layer(s) of {width} ReLU units")
