"""Data augmentation as a few batched tensor operations on the training device (no per-sample Python).

Each augmentation is drawn afresh for every batch of every epoch from a seeded generator, while the
labels stay fixed. The input is a float batch in [0, 1], before centre-cropping and standardization.
The draws are made on the generator's device (the trainer's is always the CPU) and then moved to the
images' device, so that a run on a GPU draws exactly the numbers a run on the CPU draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rethinkgen.choices import AUGMENTATIONS
from rethinkgen.data.preprocess import center_crop, crop_size_for, standardize, to_unit
from rethinkgen.errors import RethinkgenError, choice_error

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights, for grayscale and saturation
YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


@dataclass(frozen=True)
class AugmentSettings:
    """Which augmentations run, and how strong each is."""

    names: tuple[str, ...] = ()
    crop_size: int | None = None   # random crop to this size (e.g. 28 of 32); None: pad-and-crop
    pad: int = 4                   # padding for pad-and-crop when there is no smaller crop size
    rotate_degrees: float = 25.0   # App. E: rotations of up to 25 degrees
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05              # fraction of a full turn of the hue circle

    def __post_init__(self):
        for name in self.names:
            if name not in AUGMENTATIONS:
                raise choice_error("augmentation", name, AUGMENTATIONS)


def settings_for(config, image_size: int) -> AugmentSettings:
    """A run's augmentation (``config``: a RunConfig) for square images of side ``image_size``; refuses a
    centre crop larger than the images and a pad-and-crop padding outside 0..image_size."""
    crop_size = crop_size_for(image_size, config.crop)
    if "crop" in config.augment and crop_size is None and not 0 <= config.pad <= image_size:
        raise RethinkgenError(f"pad {config.pad} must be in 0..{image_size} for {image_size}x{image_size} images "
                              "(the 'crop' augmentation pads each side by it, then crops back)")
    return AugmentSettings(tuple(config.augment), crop_size=crop_size, pad=config.pad,
                           rotate_degrees=config.rotate_degrees)


def augment(images: torch.Tensor, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """Apply the augmentations in a fixed order: crop, flip, rotate, jitter. Without crop, centre-crop."""
    if "crop" in settings.names:
        images = random_crop(images, settings.crop_size, settings.pad, generator)
    else:
        images = center_crop(images, settings.crop_size)
    if "flip" in settings.names:
        images = random_flip(images, generator)
    if "rotate" in settings.names:
        images = random_rotate(images, settings.rotate_degrees, generator)
    if "jitter" in settings.names:
        images = color_jitter(images, settings, generator)
    return images


def _rand(n: int, images: torch.Tensor, generator) -> torch.Tensor:
    return torch.rand(n, device=generator.device, generator=generator).to(images.device)


def _randint(high: int, n: int, images: torch.Tensor, generator) -> torch.Tensor:
    return torch.randint(0, high, (n,), device=generator.device, generator=generator).to(images.device)

def training_input(images: torch.Tensor, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """A uint8 batch to the network's input while training: scale to [0, 1], augment, standardize each image."""
    return standardize(augment(to_unit(images), settings, generator).contiguous())


def _uniform(n: int, low: float, high: float, images: torch.Tensor, generator) -> torch.Tensor:
    return _rand(n, images, generator) * (high - low) + low


def random_crop(images: torch.Tensor, size: int | None, pad: int, generator) -> torch.Tensor:
    """A random ``size`` crop of each image; with ``size=None``, pad by ``pad`` zeros and crop back."""
    n, c, h, w = images.shape
    if size is None:
        images = F.pad(images, (pad, pad, pad, pad))
        size_h, size_w = h, w
    else:
        size_h = size_w = size
    max_top, max_left = images.shape[-2] - size_h, images.shape[-1] - size_w
    top = _randint(max_top + 1, n, images, generator)
    left = _randint(max_left + 1, n, images, generator)
    # two gathers (rows, then columns) are much cheaper than one 4-D advanced index
    rows = (top[:, None] + torch.arange(size_h, device=images.device))[:, None, :, None]
    images = images.gather(2, rows.expand(n, c, size_h, images.shape[-1]))
    cols = (left[:, None] + torch.arange(size_w, device=images.device))[:, None, None, :]
    return images.gather(3, cols.expand(n, c, size_h, size_w))


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image left to right with probability 1/2.

    Args:
        images: a batch, ``[N, C, H, W]``.
        generator: the torch.Generator of the epoch's augmentation draws.
    """
    flip = _rand(len(images), images, generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def random_rotate(images: torch.Tensor, degrees: float, generator) -> torch.Tensor:
    """Rotate each image by its own angle, uniform in [-degrees, degrees], filling the corners with 0."""
    angle = _uniform(len(images), -degrees, degrees, images, generator) * (math.pi / 180)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def color_jitter(images: torch.Tensor, settings: AugmentSettings, generator) -> torch.Tensor:
    """Random brightness and contrast; saturation and hue too for 3-channel images."""
    n = len(images)
    scale = lambda s: _uniform(n, 1 - s, 1 + s, images, generator)[:, None, None, None]  # noqa: E731
    images = (images * scale(settings.brightness)).clamp(0, 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = ((images - mean) * scale(settings.contrast) + mean).clamp(0, 1)
    if images.shape[1] != 3:
        return images
    luma = torch.tensor(LUMA, device=images.device)[None, :, None, None]
    gray = (images * luma).sum(1, keepdim=True)
    images = ((images - gray) * scale(settings.saturation) + gray).clamp(0, 1)
    # hue: rotate the chroma plane (I, Q) of YIQ by a random angle
    angle = _uniform(n, -settings.hue, settings.hue, images, generator) * (2 * math.pi)
    yiq = torch.tensor(YIQ, device=images.device)
    converted = torch.einsum("ij,njhw->nihw", yiq, images)
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    i, q = converted[:, 1], converted[:, 2]
    converted = torch.stack([converted[:, 0], cos * i - sin * q, sin * i + cos * q], 1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(yiq), converted).clamp(0, 1)
