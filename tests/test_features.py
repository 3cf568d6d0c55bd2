"""Section 5 / Table 3 feature maps: raw pixels, a Gabor wavelet transform, a random single-layer conv-net."""

import math

import numpy as np
import pytest
import torch

from rethinkgen.errors import RethinkgenError
from rethinkgen.theory.features import (
    FEATURE_MAPS,
    GaborFeatures,
    RandomConvFeatures,
    gabor_bank,
    gabor_features,
    make_feature_map,
    random_conv_features,
    raw_features,
)

SMALL_RANDOM_CONV = dict(n_filters=12, patch_size=5)  # keeps every test here fast


def uint8_images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def grating(theta, wavelength, size=32):
    """A sinusoidal grating whose stripes run across the direction theta, as uint8 [1, 1, size, size]."""
    y, x = np.mgrid[:size, :size]
    wave = np.cos(2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / wavelength)
    return np.round((wave + 1) * 127.5).astype(np.uint8)[None, None]


@pytest.fixture(params=[(1, 28, 28), (3, 32, 32)], ids=["mnist-like", "cifar-like"])
def images(request):
    return uint8_images((5, *request.param))


@pytest.mark.parametrize("name, options, dim", [
    ("raw", {}, lambda c, h, w: c * h * w),
    ("gabor", {}, lambda c, h, w: c * 8 * 3 * math.ceil(h / 4) * math.ceil(w / 4)),
    ("gabor", {"rectify": "relu", "keep_raw": True, "orientations": 4, "scales": (3.0,)},
     lambda c, h, w: c * 4 * 2 * math.ceil(h / 4) * math.ceil(w / 4) + c * h * w),
    ("random-conv", SMALL_RANDOM_CONV, lambda c, h, w: 12 * 2 * 4),
    ("random-conv", dict(SMALL_RANDOM_CONV, pool_grid=3), lambda c, h, w: 12 * 2 * 9),
])
def test_every_map_gives_float32_features_of_the_documented_size(images, name, options, dim):
    features = make_feature_map(name, **options).fit(images).transform(images)
    assert features.dtype == np.float32
    assert features.shape == (len(images), dim(*images.shape[1:]))
    assert np.isfinite(features).all() and features.std() > 0


def test_default_dimensions_for_mnist_and_cifar():
    assert GaborFeatures().output_dim((1, 28, 28)) == 1176
    assert GaborFeatures().output_dim((3, 32, 32)) == 4608
    assert RandomConvFeatures().output_dim == 12800


def test_raw_features_are_pixels_in_unit_interval():
    x = np.array([[[[0, 255], [51, 102]]]], dtype=np.uint8)
    np.testing.assert_allclose(raw_features(x), [[0.0, 1.0, 0.2, 0.4]])


def test_gabor_bank_has_one_zero_mean_filter_per_orientation_and_scale():
    bank = gabor_bank(orientations=6, scales=(3.0, 6.0))
    assert bank.dtype == torch.float32 and bank.shape[:2] == (12, 1) and bank.shape[2] == bank.shape[3]
    flat = bank.reshape(12, -1)
    assert (flat.mean(1).abs() < 1e-6 * flat.abs().amax(1)).all()
    for scale in range(2):  # orientations of one scale differ pairwise
        block = flat[6 * scale:6 * scale + 6]
        distances = torch.cdist(block, block) + torch.eye(6)
        assert (distances > 0.1 * block.norm(dim=1).min()).all()


def test_gabor_filter_prefers_a_grating_at_its_own_orientation():
    orientations, wavelength = 8, 4.0
    responses = {}
    for k in range(orientations):
        theta = math.pi * k / orientations
        pair = np.concatenate([grating(theta, wavelength), grating(theta + math.pi / 2, wavelength)])
        features = gabor_features(pair, orientations=orientations, scales=(wavelength,))
        energy = features.reshape(2, orientations, -1).mean(2)  # [grating, filter]
        responses[k] = energy[:, k]
        assert energy[0, k] > 3 * energy[1, k], (k, energy[:, k])
    assert len(responses) == orientations


def test_gabor_pooling_cells_partition_the_image():
    x = uint8_images((3, 1, 28, 28))
    fine = gabor_features(x, pool=4).reshape(3, 24, 49)
    whole = gabor_features(x, pool=28).reshape(3, 24)
    np.testing.assert_allclose(fine.mean(2), whole, rtol=1e-5, atol=1e-7)


def test_random_conv_filters_are_normalized_patches_of_the_training_images():
    train = uint8_images((4, 3, 10, 10), seed=1)
    features = RandomConvFeatures(n_filters=6, patch_size=4, seed=3).fit(train)
    flat = features.filters.reshape(6, -1)
    torch.testing.assert_close(flat.norm(dim=1), torch.ones(6))
    torch.testing.assert_close(flat.mean(dim=1), torch.zeros(6), atol=1e-6, rtol=0)
    # search every 4x4 patch of every training image for filter 0, without trusting `sources`
    windows = np.lib.stride_tricks.sliding_window_view(train, (4, 4), axis=(2, 3))  # N, C, 7, 7, 4, 4
    patches = torch.from_numpy(windows.transpose(0, 2, 3, 1, 4, 5).reshape(-1, 48).astype(np.float32))
    patches = patches - patches.mean(1, keepdim=True)
    patches = patches / patches.norm(dim=1, keepdim=True)
    assert (patches @ flat[0]).max() > 1 - 1e-5
    image, row, col = features.sources[0]
    crop = torch.from_numpy(train[image, :, row:row + 4, col:col + 4].astype(np.float32)).reshape(-1)
    crop = crop - crop.mean()
    torch.testing.assert_close(crop / crop.norm(), flat[0])


def test_random_conv_skips_blank_background_patches():
    train = np.zeros((3, 1, 28, 28), dtype=np.uint8)
    train[:, :, 10:14, 10:14] = 255  # mostly background, as in MNIST
    flat = RandomConvFeatures(n_filters=40, patch_size=6).fit(train).filters.reshape(40, -1)
    assert torch.isfinite(flat).all()
    torch.testing.assert_close(flat.norm(dim=1), torch.ones(40))


def test_random_conv_uses_the_training_filters_for_new_images():
    train, test = uint8_images((6, 1, 16, 16), seed=1), uint8_images((4, 1, 16, 16), seed=2)
    fitted = RandomConvFeatures(**SMALL_RANDOM_CONV, seed=5).fit(train)
    filters = fitted.filters.clone()
    first, second = fitted.transform(test), fitted.transform(test)
    np.testing.assert_array_equal(first, second)
    assert torch.equal(fitted.filters, filters)
    np.testing.assert_array_equal(random_conv_features(test, **SMALL_RANDOM_CONV, seed=5, train_images=train), first)
    # without train_images the filters come from the images themselves, hence differ here
    assert not np.allclose(random_conv_features(test, **SMALL_RANDOM_CONV, seed=5), first)
    other_seed = RandomConvFeatures(**SMALL_RANDOM_CONV, seed=6).fit(train).transform(test)
    assert not np.allclose(other_seed, first)


def test_random_conv_is_deterministic_for_a_seed():
    x = uint8_images((5, 3, 12, 12))
    a = RandomConvFeatures(**SMALL_RANDOM_CONV, seed=7).fit(x)
    b = RandomConvFeatures(**SMALL_RANDOM_CONV, seed=7).fit(x)
    assert torch.equal(a.filters, b.filters)
    np.testing.assert_array_equal(a.transform(x), b.transform(x))


def test_random_conv_quadrants_partition_each_response_map():
    x = uint8_images((3, 1, 13, 13))  # 9x9 maps: quadrants of unequal size
    whole = RandomConvFeatures(**SMALL_RANDOM_CONV, pool_grid=1).fit(x).transform(x).reshape(3, 12, 2)
    quads = RandomConvFeatures(**SMALL_RANDOM_CONV, pool_grid=2).fit(x).transform(x).reshape(3, 12, 2, 4)
    np.testing.assert_allclose(quads.sum(3), whole, rtol=1e-5, atol=1e-5)
    assert (quads >= 0).all() and (quads > 0).any()


@pytest.mark.parametrize("name, options", [("gabor", {}), ("random-conv", SMALL_RANDOM_CONV)])
def test_chunk_size_does_not_change_the_features(name, options):
    x = uint8_images((7, 3, 16, 16))
    results = [make_feature_map(name, **options, chunk_size=size).fit(x).transform(x) for size in (1, 3, None)]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: raw_features(np.zeros((2, 28, 28), np.uint8)), "[N, C, H, W]"),
    (lambda: gabor_features(np.zeros((2, 28, 28), np.uint8)), "[N, C, H, W]"),
    (lambda: random_conv_features(np.zeros((2, 1, 28, 28), np.float32)), "uint8"),
    (lambda: random_conv_features(np.zeros((2, 1, 5, 5), np.uint8), patch_size=6), "larger than"),
    (lambda: RandomConvFeatures(patch_size=6).fit(uint8_images((2, 1, 8, 8))).transform(uint8_images((2, 1, 5, 8))),
     "larger than"),
    (lambda: RandomConvFeatures(**SMALL_RANDOM_CONV).transform(uint8_images((2, 1, 8, 8))), "fit"),
    (lambda: RandomConvFeatures(**SMALL_RANDOM_CONV).fit(uint8_images((2, 1, 8, 8))).transform(
        uint8_images((2, 3, 8, 8))), "channel"),
    (lambda: RandomConvFeatures(**SMALL_RANDOM_CONV).fit(np.full((2, 1, 8, 8), 9, np.uint8)), "blank"),
    (lambda: make_feature_map("gabor", rectify="square"), "abs"),
    (lambda: make_feature_map("random-conv", filters=8), "n_filters"),
])
def test_bad_input_raises_a_one_line_error(call, message):
    with pytest.raises(RethinkgenError) as error:
        call()
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unknown_feature_map_lists_the_allowed_names():
    with pytest.raises(RethinkgenError, match="random-conv") as error:
        make_feature_map("scattering")
    assert all(name in str(error.value) for name in FEATURE_MAPS) and "scattering" in str(error.value)


def test_random_conv_features_classify_digits():
    from sklearn.linear_model import RidgeClassifier

    from rethinkgen.data import load

    d = load("digits")
    fmap = RandomConvFeatures(n_filters=200, patch_size=4, seed=0).fit(d.x_train[:500])
    train, test = fmap.transform(d.x_train[:500]), fmap.transform(d.x_test)
    accuracy = RidgeClassifier(alpha=1.0).fit(train, d.y_train[:500]).score(test, d.y_test)
    assert accuracy > 0.8


def test_random_conv_responds_to_the_patch_its_filter_was_cut_from():
    train = uint8_images((3, 3, 12, 12), seed=4)
    fmap = RandomConvFeatures(n_filters=5, patch_size=5, pool_grid=1, seed=2).fit(train)
    for k, (image, _, _) in enumerate(fmap.sources):
        codes = fmap.transform(train[image:image + 1]).reshape(5, 2)  # [filter, sign], whole map
        assert codes[k, 0] > 0.5  # cosine ~0.9 at the source position, minus alpha = 0.25
