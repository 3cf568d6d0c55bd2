"""The bundled sources: scikit-learn's digits and the synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from rethinkgen.data import load

pytestmark = pytest.mark.usefixtures("isolated_cache")


def test_digits_shapes_and_dtypes(digits):
    assert digits.name == "digits"
    assert digits.x_train.shape == (1347, 1, 8, 8)
    assert digits.x_test.shape == (450, 1, 8, 8)
    assert digits.x_train.dtype == np.uint8 and digits.x_test.dtype == np.uint8
    assert digits.y_train.dtype == np.int64 and digits.y_test.dtype == np.int64
    assert digits.y_train.shape == (1347,) and digits.y_test.shape == (450,)
    assert digits.image_shape == (1, 8, 8)
    assert digits.num_classes == 10
    assert digits.classes == tuple(str(d) for d in range(10))
    assert set(np.unique(digits.y_train)) == set(range(10))
    assert set(np.unique(digits.y_test)) == set(range(10))
    assert digits.describe() == "digits: 1347 train / 450 test, images 1x8x8, 10 classes"


def test_digits_values_span_full_byte_range(digits):
    everything = np.concatenate([digits.x_train.ravel(), digits.x_test.ravel()])
    assert everything.min() == 0
    assert everything.max() == 255
    # scaled from sklearn's 0..16 counts, so exactly 17 distinct levels
    assert len(np.unique(everything)) == 17


def test_digits_split_is_reproducible(digits):
    again = load("digits")
    np.testing.assert_array_equal(again.x_train, digits.x_train)
    np.testing.assert_array_equal(again.y_train, digits.y_train)
    np.testing.assert_array_equal(again.x_test, digits.x_test)
    np.testing.assert_array_equal(again.y_test, digits.y_test)
    assert again.content_hash() == digits.content_hash()


def test_digits_split_is_stratified(digits):
    train_counts = np.bincount(digits.y_train, minlength=10)
    test_counts = np.bincount(digits.y_test, minlength=10)
    total = train_counts + test_counts
    # each class is split 75/25 as closely as integers allow
    assert np.all(np.abs(test_counts - total * 0.25) <= 1)
    assert np.all(np.abs(train_counts - total * 0.75) <= 1)


def test_digits_train_and_test_are_disjoint_and_cover_sklearn(digits):
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    assert len(digits.y_train) + len(digits.y_test) == len(bunch.target) == 1797
    # train + test is exactly sklearn's data (as a multiset of image+label rows), each example once
    expected = np.round(bunch.images * (255 / 16)).astype(np.uint8).reshape(1797, -1)
    expected = np.concatenate([expected, bunch.target[:, None].astype(np.uint8)], axis=1)
    got = np.concatenate([
        np.concatenate([digits.x_train.reshape(1347, -1), digits.y_train[:, None].astype(np.uint8)], axis=1),
        np.concatenate([digits.x_test.reshape(450, -1), digits.y_test[:, None].astype(np.uint8)], axis=1)])
    assert sorted(map(bytes, got)) == sorted(map(bytes, expected))


# ------------------------------------------------------------------------------------------ synthetic


def test_synthetic_default_shapes():
    data = load("synthetic")
    assert data.x_train.shape == (512, 1, 8, 8)
    assert data.x_test.shape == (256, 1, 8, 8)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert data.num_classes == 4
    assert data.classes == ("class0", "class1", "class2", "class3")
    # labels are balanced: arange(n) % num_classes, shuffled
    assert np.bincount(data.y_train).tolist() == [128] * 4
    assert np.bincount(data.y_test).tolist() == [64] * 4


def test_synthetic_options_and_reproducibility():
    data = load("synthetic", n_train=30, n_test=10, channels=3, size=5, num_classes=5, seed=7)
    assert data.x_train.shape == (30, 3, 5, 5) and data.x_test.shape == (10, 3, 5, 5)
    assert data.num_classes == 5
    assert load("synthetic", seed=7, n_train=30, n_test=10, channels=3, size=5,
                num_classes=5).content_hash() == data.content_hash()
    assert load("synthetic", seed=8, n_train=30, n_test=10, channels=3, size=5,
                num_classes=5).content_hash() != data.content_hash()


# -------------------------------------------------------------------------------------------- subset


