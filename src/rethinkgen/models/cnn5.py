"""The 5-layer CNN of base width K of Nakkiran et al. 2019 ("Deep double descent"), for model-size sweeps.

Four 3x3 convolutions of K, 2K, 4K and 8K channels, each followed by batch norm and ReLU, the last three
by a 2x2 max pool, then a global max pool and one linear layer. Their network pools the 4x4 map of a
32x32 image with a 4x4 max pool; the global max pool here is the same there and also takes the 28x28
crops and the 8x8 digits. They train with Adam (or SGD with a decaying rate); rethinkgen trains every
model with SGD, at 0.01 by default for this family.
"""

from __future__ import annotations

from torch import nn

from rethinkgen.models import ModelEntry, register_family

CNN5_LR = 0.01  # not the paper's (it has no such network): the rate of its other conv nets


def cnn5(input_shape, num_classes: int, width: int, dropout: float = 0.0) -> nn.Sequential:
    """The network of base width ``width`` (K) for images of ``input_shape`` (C, H, W) and ``num_classes``
    classes; ``dropout`` before the linear layer (0 = off)."""
    layers: list[nn.Module] = []
    channels = input_shape[0]
    for i, out in enumerate((width, 2 * width, 4 * width, 8 * width)):
        layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        if i > 0:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil: an odd side (7, 3) keeps its last row
        channels = out
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(channels, num_classes))
    return nn.Sequential(*layers)


@register_family("cnn5-K")
def cnn5_entry(width: int) -> ModelEntry:
    """The family member ``cnn5-<width>``."""
    def factory(input_shape, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
        return cnn5(input_shape, num_classes, width, dropout)
    return ModelEntry(f"cnn5-{width}", factory, CNN5_LR,
                      f"5-layer CNN of Nakkiran et al. 2019, conv widths {width}-{2 * width}-{4 * width}-{8 * width}")
