"""The paper's preprocessing (App. A) as batched tensor operations: scale, centre-crop, standardize."""

from __future__ import annotations

import torch

from rethinkgen.errors import RethinkgenError

PAPER_INPUT_SIZE = 32  # CIFAR-10 images are 32x32 ...
PAPER_CROP_SIZE = 28   # ... and the paper centre-crops them to 28x28


def crop_size_for(image_size: int, crop: str | int) -> int | None:
    """The centre-crop size: ``auto`` crops 32x32 images to 28x28 as the paper does, others not at all."""
    if crop == "auto":
        return PAPER_CROP_SIZE if image_size == PAPER_INPUT_SIZE else None
    if crop == "none" or crop is None:
        return None
    size = int(crop)
    if not 1 <= size <= image_size:
        raise RethinkgenError(f"crop size {crop!r} must be in 1..{image_size} for {image_size}x{image_size} images")
    return None if size == image_size else size


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 to float 0..1, in torch's default float type (float64 where a test asks for it)."""
    return images.to(torch.get_default_dtype()).div_(255.0)


def center_crop(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """The central ``size`` x ``size`` part of each image.

    Args:
        images: a batch, ``[..., H, W]``.
        size: the side of the crop; None returns ``images`` as they are.
    """
    if size is None:
        return images
    top = (images.shape[-2] - size) // 2
    left = (images.shape[-1] - size) // 2
    return images[..., top:top + size, left:left + size]


def standardize(images: torch.Tensor) -> torch.Tensor:
    """TensorFlow's per_image_standardization: each image to mean 0 and std 1 over all its values.

    The std is floored at 1/sqrt(number of values) so that a constant image does not divide by zero.
    """
    flat = images.flatten(1)
    centered = flat - flat.mean(dim=1, keepdim=True)
    # the std from the centred values directly: several times faster than Tensor.std on CPU
    std = centered.square().mean(dim=1, keepdim=True).sqrt()
    return (centered / std.clamp_min(flat.shape[1] ** -0.5)).view_as(images)


def preprocess(images: torch.Tensor, crop_size: int | None) -> torch.Tensor:
    """uint8 images to the network's input: scale to [0, 1], centre-crop, standardize each image."""
    return standardize(center_crop(to_unit(images), crop_size).contiguous())
