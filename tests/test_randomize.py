"""Each randomization against its definition in the paper (Section 2.1), checked statistically."""

from dataclasses import replace

import numpy as np
import pytest

from rethinkgen.data import load
from rethinkgen.data.builtin import load_synthetic
from rethinkgen.data.randomize import INPUTS, RandomizationRecord, randomize
from rethinkgen.errors import RethinkgenError


@pytest.fixture(scope="module")
def big():
    """20,000 labels over 10 classes: enough for 5-sigma binomial checks."""
    return load_synthetic(n_train=20000, n_test=2000, channels=3, size=4, num_classes=10, seed=1)


def within_sigmas(count, n, p, sigmas=5):
    return abs(count - n * p) <= sigmas * np.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_label_noise_replaces_with_probability_p_and_changes_p_times_1_minus_1_over_k(big, p):
    noisy, record = randomize(big, label_noise=p, seed=7)
    n, k = len(big.y_train), big.num_classes
    assert within_sigmas(len(record.replaced), n, p)
    assert within_sigmas(len(record.changed), n, p * (1 - 1 / k))
    changed = np.flatnonzero(noisy.y_train != big.y_train)
    np.testing.assert_array_equal(changed, record.changed)
    assert set(record.changed) <= set(record.replaced)
    kept = np.setdiff1d(np.arange(n), record.replaced)
    np.testing.assert_array_equal(noisy.y_train[kept], big.y_train[kept])
    summary = record.summary(n)
    assert summary["expected_fraction_changed"] == pytest.approx(p * 0.9)
    assert summary["fraction_changed"] == pytest.approx(len(record.changed) / n)


def test_replacement_labels_are_uniform_and_independent_of_the_original(big):
    noisy, record = randomize(big, label_noise=1.0, seed=3)
    assert len(record.replaced) == len(big.y_train)
    counts = np.bincount(noisy.y_train, minlength=10)
    expected = len(noisy.y_train) / 10
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 33.7  # 99.99th percentile of chi-square with 9 degrees of freedom
    agreement = (noisy.y_train == big.y_train).mean()
    assert abs(agreement - 0.1) < 0.015  # random labels agree with the truth only by chance


def test_zero_noise_and_original_inputs_is_the_identity(big):
    same, record = randomize(big, 0.0, "original", seed=5)
    np.testing.assert_array_equal(same.y_train, big.y_train)
    np.testing.assert_array_equal(same.x_train, big.x_train)
    assert len(record.replaced) == 0 and record.dataset_hash == big.content_hash()


@pytest.mark.parametrize("inputs", INPUTS)
def test_same_seed_is_byte_identical_and_another_seed_is_not(big, inputs):
    a, record_a = randomize(big, 0.4, inputs, seed=11)
    b, record_b = randomize(big, 0.4, inputs, seed=11)
    c, _ = randomize(big, 0.4, inputs, seed=12)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    assert record_a.dataset_hash == record_b.dataset_hash
    assert not np.array_equal(a.y_train, c.y_train)


def test_randomize_does_not_modify_its_input(big):
    before = big.content_hash()
    for inputs in INPUTS:
        randomize(big, 1.0, inputs, seed=2, corrupt_test_labels=True)
    assert big.content_hash() == before


def test_test_labels_stay_true_unless_asked(big):
    noisy, record = randomize(big, 1.0, seed=4)
    np.testing.assert_array_equal(noisy.y_test, big.y_test)
    assert len(record.test_changed) == 0
    corrupted, record = randomize(big, 1.0, seed=4, corrupt_test_labels=True)
    assert within_sigmas(len(record.test_changed), len(big.y_test), 0.9)
    np.testing.assert_array_equal(np.flatnonzero(corrupted.y_test != big.y_test), record.test_changed)


def pixels(x):
    """Each image's pixels as tuples of channel values, sorted: invariant under moving whole pixels."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w).transpose(0, 2, 1)
    return np.array([sorted(map(tuple, image)) for image in flat])


def test_shuffled_pixels_apply_one_permutation_to_train_and_test_moving_channels_together(big):
    shuffled, record = randomize(big, inputs="shuffled-pixels", seed=9)
    perm = record.permutation
    assert sorted(perm) == list(range(16)) and not np.array_equal(perm, np.arange(16))
    for split in ("train", "test"):
        original = getattr(big, f"x_{split}").reshape(-1, 3, 16)
        np.testing.assert_array_equal(getattr(shuffled, f"x_{split}").reshape(-1, 3, 16), original[:, :, perm])
    np.testing.assert_array_equal(shuffled.y_train, big.y_train)


def test_random_pixels_permute_each_image_on_its_own(big):
    shuffled, record = randomize(big, inputs="random-pixels", seed=9)
    assert record.permutation is None
    for split in ("train", "test"):
        original, permuted = getattr(big, f"x_{split}")[:200], getattr(shuffled, f"x_{split}")[:200]
        np.testing.assert_array_equal(pixels(original), pixels(permuted))  # same pixels, channels together
    # recover each image's permutation from its (unique) pixel tuples and check they differ between images
    x = big.x_train[:50].reshape(50, 3, 16)
    y = shuffled.x_train[:50].reshape(50, 3, 16)
    perms = set()
    for a, b in zip(x, y):
        keys = [tuple(a[:, j]) for j in range(16)]
        perms.add(tuple(keys.index(tuple(b[:, j])) for j in range(16)))
    assert len(perms) > 45


def test_gaussian_matches_per_channel_mean_and_std_of_training_set():
    rng = np.random.default_rng(0)
    base = load_synthetic(n_train=4000, n_test=500, channels=3, size=6, num_classes=10)
    # give the channels clearly different moments, well inside 0..255 so clipping barely matters
    means, stds = np.array([60.0, 128.0, 190.0]), np.array([10.0, 25.0, 15.0])
    x = np.clip(rng.normal(means[None, :, None, None], stds[None, :, None, None], base.x_train.shape), 0, 255)
    base = replace(base, x_train=np.round(x).astype(np.uint8))
    noise, record = randomize(base, inputs="gaussian", seed=1)
    np.testing.assert_allclose(record.gaussian_mean, base.x_train.mean(axis=(0, 2, 3)), rtol=1e-9)
    for split in ("train", "test"):
        values = getattr(noise, f"x_{split}").astype(float)
        np.testing.assert_allclose(values.mean(axis=(0, 2, 3)), means, atol=1.5)
        np.testing.assert_allclose(values.std(axis=(0, 2, 3)), stds, rtol=0.05)
    assert noise.x_train.dtype == np.uint8 and noise.x_train.shape == base.x_train.shape
    # within a channel, a noise image is unrelated to the image it replaced
    within = np.corrcoef(noise.x_train[:, 1].ravel().astype(float), base.x_train[:, 1].ravel().astype(float))[0, 1]
    assert abs(within) < 0.02


def test_the_two_knobs_are_independent(big):
    both, _ = randomize(big, 0.5, "shuffled-pixels", seed=21)
    labels_only, _ = randomize(big, 0.5, "original", seed=21)
    inputs_only, _ = randomize(big, 0.0, "shuffled-pixels", seed=21)
    np.testing.assert_array_equal(both.y_train, labels_only.y_train)
    np.testing.assert_array_equal(both.x_train, inputs_only.x_train)


def test_record_round_trips_through_files(big, tmp_path):
    _, record = randomize(big, 0.7, "shuffled-pixels", seed=8, corrupt_test_labels=True)
    record.save(tmp_path, len(big.y_train))
    loaded = RandomizationRecord.load(tmp_path)
    for name in RandomizationRecord.ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(record, name))
    assert loaded.dataset_hash == record.dataset_hash and loaded.label_noise == 0.7
    assert loaded.seed == 8 and loaded.inputs == "shuffled-pixels" and loaded.corrupt_test_labels


def test_digits_random_labels_record_counts():
    digits = load("digits")
    _, record = randomize(digits, 1.0, seed=0)
    summary = record.summary(len(digits.y_train))
    assert summary["n_replaced"] == len(digits.y_train)
    assert 0.85 < summary["fraction_changed"] < 0.95


@pytest.mark.parametrize("kwargs, fragment", [
    ({"label_noise": -0.1}, "-0.1"), ({"label_noise": 1.5}, "1.5"), ({"label_noise": float("nan")}, "nan"),
    ({"label_noise": "half"}, "half"), ({"inputs": "noise"}, "original, shuffled-pixels"),
    ({"seed": -1}, "-1"), ({"seed": 1.5}, "1.5"),
])
def test_bad_arguments_name_the_value(big, kwargs, fragment):
    with pytest.raises(RethinkgenError, match=fragment.replace(".", r"\.").replace("-", r"\-")):
        randomize(big, **kwargs)
