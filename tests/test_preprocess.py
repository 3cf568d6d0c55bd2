"""The paper's CIFAR preprocessing and the batched augmentations."""

import numpy as np
import pytest
import torch

from rethinkgen.data.augment import AugmentSettings, augment, color_jitter, random_crop, random_flip, random_rotate
from rethinkgen.data.preprocess import center_crop, crop_size_for, preprocess, standardize
from rethinkgen.errors import RethinkgenError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_standardize_is_tensorflow_per_image_standardization():
    images = torch.rand(5, 3, 28, 28, generator=gen())
    out = standardize(images)
    flat = out.flatten(1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(1, correction=0), torch.ones(5), atol=1e-4, rtol=0)
    # by hand, with numpy, for one image: (x - mean) / max(std, 1/sqrt(N))
    x = images[0].numpy().astype(np.float64)
    expected = (x - x.mean()) / max(x.std(), 1 / np.sqrt(x.size))
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-5)


def test_standardize_floors_the_std_of_a_constant_image():
    out = standardize(torch.full((1, 3, 4, 4), 0.7))
    assert torch.isfinite(out).all() and out.abs().max() < 1e-5


def test_paper_pipeline_crops_32_to_the_central_28():
    assert crop_size_for(32, "auto") == 28 and crop_size_for(28, "auto") is None
    assert crop_size_for(32, "none") is None and crop_size_for(32, "24") == 24
    with pytest.raises(RethinkgenError, match="crop size"):
        crop_size_for(8, "20")
    images = torch.arange(32 * 32, dtype=torch.uint8).repeat(1, 1, 1, 1).view(1, 1, 32, 32)
    torch.testing.assert_close(center_crop(images, 28), images[..., 2:30, 2:30])
    out = preprocess(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=gen()), 28)
    assert out.shape == (2, 3, 28, 28) and out.dtype == torch.float32


def test_random_crop_takes_windows_of_each_image():
    images = torch.rand(64, 3, 32, 32, generator=gen())
    crops = random_crop(images, 28, pad=4, generator=gen(1))
    assert crops.shape == (64, 3, 28, 28)
    offsets = set()
    for image, crop in zip(images, crops):
        found = [(top, left) for top in range(5) for left in range(5)
                 if torch.equal(image[:, top:top + 28, left:left + 28], crop)]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 10  # offsets vary from image to image


def test_pad_and_crop_keeps_the_size_and_pads_with_zeros():
    images = torch.rand(200, 1, 8, 8, generator=gen()) + 0.5  # strictly positive, so zeros come from padding
    crops = random_crop(images, None, pad=2, generator=gen(2))
    assert crops.shape == images.shape
    assert (crops == 0).any() and (crops == images).all(dim=(1, 2, 3)).any()


def test_flip_mirrors_about_half_of_the_images():
    images = torch.rand(400, 1, 4, 4, generator=gen())
    out = random_flip(images, gen(3))
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all()
    assert 150 < int(mirrored.sum()) < 250


def test_rotation_by_zero_degrees_is_the_identity_and_rotation_moves_pixels():
    images = torch.rand(8, 3, 16, 16, generator=gen())
    torch.testing.assert_close(random_rotate(images, 0.0, gen()), images, atol=1e-5, rtol=0)
    rotated = random_rotate(images, 25.0, gen())
    assert rotated.shape == images.shape and not torch.allclose(rotated, images, atol=1e-2)


def test_color_jitter_stays_in_range_and_leaves_gray_images_gray():
    images = torch.rand(16, 3, 8, 8, generator=gen())
    settings = AugmentSettings(("jitter",))
    out = color_jitter(images, settings, gen(4))
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, images)
    gray = torch.rand(4, 1, 8, 8, generator=gen()).expand(4, 3, 8, 8).contiguous()
    out = color_jitter(gray, settings, gen(5))
    torch.testing.assert_close(out[:, 0], out[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 1], out[:, 2], atol=1e-5, rtol=0)


def test_augment_is_deterministic_for_a_seeded_generator_and_centre_crops_without_crop():
    images = torch.rand(32, 3, 32, 32, generator=gen())
    settings = AugmentSettings(("crop", "flip", "rotate", "jitter"), crop_size=28)
    a, b = augment(images, settings, gen(9)), augment(images, settings, gen(9))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.shape == (32, 3, 28, 28)
    flip_only = augment(images, AugmentSettings(("flip",), crop_size=28), gen(1))
    assert flip_only.shape == (32, 3, 28, 28)


def test_unknown_augmentation_is_refused():
    with pytest.raises(RethinkgenError, match="'mixup'; allowed: crop, flip, rotate, jitter"):
        AugmentSettings(("mixup",))
