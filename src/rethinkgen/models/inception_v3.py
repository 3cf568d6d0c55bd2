"""Inception V3 (Szegedy et al. 2016), the paper's ImageNet network (Table 2), built by torchvision.

torchvision is an optional extra (``pip install 'rethinkgen[vision]'``); the model is registered
either way, and building it without torchvision says how to install it. Choices:

- **No auxiliary classifier** (``aux_logits=False``): the model returns plain logits like every other
  model here, so the trainer, evaluation and time to fit need no special case. The auxiliary head only
  adds a second loss while training (weight 0.4 in the TensorFlow and torchvision recipes), the paper
  does not mention it, and it cannot run on inputs below 299x299 (its 5x5 convolution after a 5x5,
  stride-3 pooling needs Mixed_6e's grid to be at least 17x17; checked with torchvision 0.29.1).
- Trained from scratch: torchvision's truncated-normal initialization, no pretrained weights, nothing
  downloaded. ``transform_input`` is off, since inputs are already standardized per image.
- ``dropout`` is torchvision's dropout before the classifier (the TensorFlow Inception package keeps 0.8,
  i.e. dropout 0.2; the ``table2`` preset uses that).
- Any number of input channels (torchvision's first convolution takes 3; it is rebuilt for others).
- Inputs of at least 75x75 (torchvision's limit: below it a pooling layer gets an empty grid).
"""

from __future__ import annotations

from torch import nn

from rethinkgen.errors import RethinkgenError
from rethinkgen.models import register_model

# With SGD and momentum 0.9 at batch 32, the TensorFlow Inception package's RMSProp rate 0.045 was unstable
# here (mean training loss 5.7 after 15 epochs on 256 Fashion-MNIST images at 75x75, 10 classes), 0.01 was
# not (2.8; 1.5 at 0.003). 0.01 is close to torchvision's reference 0.1 per 256 images scaled to 32 (0.0125).
INCEPTION_V3_LR = 0.01
MIN_SIZE = 75
FIRST_CONV_CHANNELS = 32
INIT_STD = 0.1  # torchvision's truncated-normal standard deviation for Inception V3's layers


def _torchvision_inception():
    try:
        from torchvision.models.inception import Inception3  # optional extra: rethinkgen[vision]
    except ImportError:
        raise RethinkgenError("model 'inception-v3' needs torchvision, which is not installed: "
                              "pip install 'rethinkgen[vision]'") from None
    except Exception as error:  # a torchvision built for another torch fails with RuntimeError or OSError
        raise RethinkgenError(f"model 'inception-v3' needs torchvision, which cannot be imported ({error}); "
                              "install the torchvision built for your torch: pip install 'rethinkgen[vision]'") from None
    return Inception3


@register_model("inception-v3", INCEPTION_V3_LR,
                "torchvision's Inception V3 for ImageNet (Table 2); needs torchvision and images >= 75x75")
def inception_v3(input_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.0) -> nn.Module:
    """Inception V3 (torchvision's, without auxiliary logits) for ImageNet-style inputs.

    Args:
        input_shape: one image's shape, (C, H, W).
        num_classes: the number of outputs.
        dropout: the dropout probability before the last layer (0: none).
    """
    inception3 = _torchvision_inception()
    channels, height, width = input_shape
    if min(height, width) < MIN_SIZE:
        raise RethinkgenError(f"model 'inception-v3' needs images of at least {MIN_SIZE}x{MIN_SIZE}, got "
                              f"{height}x{width} (for an image folder, set --image-size)")
    model = inception3(num_classes=num_classes, aux_logits=False, transform_input=False, init_weights=True,
                       dropout=dropout)
    if channels != 3:
        conv = nn.Conv2d(channels, FIRST_CONV_CHANNELS, kernel_size=3, stride=2, bias=False)
        nn.init.trunc_normal_(conv.weight, mean=0.0, std=INIT_STD, a=-2, b=2)
        model.Conv2d_1a_3x3.conv = conv
    return model
