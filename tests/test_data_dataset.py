"""Dataset: construction, validation, stratified subsets and the content hash."""

from __future__ import annotations

import numpy as np
import pytest

from rethinkgen.data import Dataset
from rethinkgen.errors import RethinkgenError

pytestmark = pytest.mark.usefixtures("isolated_cache")


def _indexed_dataset(n_train=300, n_test=120, num_classes=3, seed=0) -> Dataset:
    """Each image stores its own row number in its first two pixels, so subsets can be traced back."""
    rng = np.random.default_rng(seed)

    def split(n, offset):
        x = rng.integers(0, 256, size=(n, 1, 4, 4), dtype=np.uint8)
        rows = np.arange(n) + offset
        x[:, 0, 0, 0] = rows % 256
        x[:, 0, 0, 1] = rows // 256
        # unequal class sizes, so that stratification is not trivially satisfied
        y = rng.choice(num_classes, size=n, p=np.linspace(1, 2, num_classes) / np.linspace(1, 2, num_classes).sum())
        return x, y.astype(np.int64)

    x_train, y_train = split(n_train, 0)
    x_test, y_test = split(n_test, 1000)
    return Dataset("indexed", x_train, y_train, x_test, y_test, tuple(f"c{k}" for k in range(num_classes)))


def _rows(x: np.ndarray) -> np.ndarray:
    return x[:, 0, 0, 0].astype(int) + 256 * x[:, 0, 0, 1].astype(int)


# --------------------------------------------------------------------------------------------- digits


def _arrays(n_train=6, n_test=4):
    return (np.zeros((n_train, 1, 2, 2), np.uint8), np.arange(n_train, dtype=np.int64) % 2,
            np.zeros((n_test, 1, 2, 2), np.uint8), np.arange(n_test, dtype=np.int64) % 2)


def test_subset_exact_sizes():
    data = _indexed_dataset()
    sub = data.subset(50, seed=0, n_test=20)
    assert len(sub.y_train) == 50 and sub.x_train.shape == (50, 1, 4, 4)
    assert len(sub.y_test) == 20 and sub.x_test.shape == (20, 1, 4, 4)
    assert sub.classes == data.classes and sub.name == data.name
    # the original is untouched
    assert len(data.y_train) == 300 and len(data.y_test) == 120


def test_subset_none_keeps_split_unchanged():
    data = _indexed_dataset()
    only_train = data.subset(40)
    np.testing.assert_array_equal(only_train.x_test, data.x_test)
    np.testing.assert_array_equal(only_train.y_test, data.y_test)
    assert len(only_train.y_train) == 40
    only_test = data.subset(n_test=15)
    np.testing.assert_array_equal(only_test.x_train, data.x_train)
    assert len(only_test.y_test) == 15
    full = data.subset(len(data.y_train), n_test=len(data.y_test))
    assert full.content_hash() == data.content_hash()


@pytest.mark.parametrize("n", [1, 7, 50, 101, 299])
def test_subset_is_stratified(n):
    data = _indexed_dataset()
    sub = data.subset(n, seed=3, n_test=min(n, 120))
    for full_y, sub_y, size in [(data.y_train, sub.y_train, n), (data.y_test, sub.y_test, min(n, 120))]:
        full_counts = np.bincount(full_y, minlength=data.num_classes)
        sub_counts = np.bincount(sub_y, minlength=data.num_classes)
        assert sub_counts.sum() == size
        proportional = full_counts * size / len(full_y)
        assert np.all(np.abs(sub_counts - proportional) <= 1), (sub_counts, proportional)


def test_subset_hands_leftover_slots_to_largest_remainders():
    # 1, 2 and 97 examples of classes 0..2; 10 of 100 gives quotas 0.1, 0.2, 9.7 -> exactly 0, 0, 10
    y = np.repeat(np.arange(3), [1, 2, 97]).astype(np.int64)
    x = np.zeros((100, 1, 1, 1), np.uint8)
    data = Dataset("skewed", x, y, x[:3], y[:3], classes=("a", "b", "c"))
    for seed in range(3):
        assert np.bincount(data.subset(10, seed=seed).y_train, minlength=3).tolist() == [0, 0, 10]
    assert np.bincount(data.subset(25).y_train, minlength=3).tolist() == [0, 1, 24]  # .25, .5, 24.25


def test_subset_on_digits_is_stratified(digits):
    sub = digits.subset(100, seed=0, n_test=30)
    counts = np.bincount(sub.y_train, minlength=10)
    expected = np.bincount(digits.y_train, minlength=10) * 100 / len(digits.y_train)
    assert np.all(np.abs(counts - expected) <= 1)
    assert set(np.unique(sub.y_train)) == set(range(10))


def test_subset_same_seed_same_rows_different_seed_different_rows():
    data = _indexed_dataset()
    a = data.subset(60, seed=1, n_test=30)
    b = data.subset(60, seed=1, n_test=30)
    c = data.subset(60, seed=2, n_test=30)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.content_hash() == b.content_hash()
    assert not np.array_equal(_rows(a.x_train), _rows(c.x_train))
    assert not np.array_equal(_rows(a.x_test), _rows(c.x_test))
    assert a.content_hash() != c.content_hash()


def test_subset_rows_come_from_the_original():
    data = _indexed_dataset()
    sub = data.subset(80, seed=5, n_test=25)
    for split, offset in [("train", 0), ("test", 1000)]:
        full_x, full_y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        sub_x, sub_y = getattr(sub, f"x_{split}"), getattr(sub, f"y_{split}")
        rows = _rows(sub_x) - offset
        assert len(set(rows.tolist())) == len(rows), "a row was picked twice"
        assert rows.min() >= 0 and rows.max() < len(full_y)
        # each picked row is identical, pixels and label, to the original row it came from
        np.testing.assert_array_equal(sub_x, full_x[rows])
        np.testing.assert_array_equal(sub_y, full_y[rows])


@pytest.mark.parametrize("bad", [0, -1, 301, 2.5, "10", np.float64(10.0)])
def test_subset_bad_train_size_raises(bad):
    data = _indexed_dataset()
    with pytest.raises(RethinkgenError, match=r"train subset size") as info:
        data.subset(bad)
    assert repr(bad) in str(info.value)
    assert "1..300" in str(info.value)


@pytest.mark.parametrize("bad", [0, 121, 3.0])
def test_subset_bad_test_size_raises(bad):
    data = _indexed_dataset()
    with pytest.raises(RethinkgenError, match=r"test subset size") as info:
        data.subset(10, n_test=bad)
    assert repr(bad) in str(info.value)
    assert "1..120" in str(info.value)


def test_subset_accepts_numpy_integers():
    data = _indexed_dataset()
    assert len(data.subset(np.int64(12)).y_train) == 12


# -------------------------------------------------------------------------------- Dataset validation


def test_dataset_valid_construction():
    data = Dataset("ok", *_arrays(), classes=("a", "b"))
    assert data.num_classes == 2 and data.image_shape == (1, 2, 2)


@pytest.mark.parametrize("change, pattern", [
    (lambda a: (a[0].astype(np.float32), *a[1:]), r"x_train must be uint8"),
    (lambda a: (a[0], a[1], a[2].astype(np.int16), a[3]), r"x_test must be uint8"),
    (lambda a: (a[0][:, 0], *a[1:]), r"x_train must be uint8 \[N, C, H, W\]"),
    (lambda a: (a[0][..., None], *a[1:]), r"x_train must be uint8"),
    (lambda a: (a[0], a[1].astype(np.int32), *a[2:]), r"y_train must be int64"),
    (lambda a: (a[0], a[1].astype(np.float64), *a[2:]), r"y_train must be int64"),
    (lambda a: (a[0], a[1][:, None], *a[2:]), r"y_train must be int64"),
    (lambda a: (a[0], a[1][:-1], *a[2:]), r"y_train must be int64 \[6\]"),
    (lambda a: (*a[:3], a[3][:-1]), r"y_test must be int64 \[4\]"),
    (lambda a: (a[0], a[1] + 1, *a[2:]), r"y_train has labels outside 0\.\.1"),
    (lambda a: (a[0], a[1] - 1, *a[2:]), r"y_train has labels outside 0\.\.1"),
    (lambda a: (*a[:3], a[3] + 5), r"y_test has labels outside 0\.\.1"),
    (lambda a: (a[0], a[1], np.zeros((4, 1, 3, 3), np.uint8), a[3]), r"differ in shape"),
])
def test_dataset_validation_errors(change, pattern):
    with pytest.raises(RethinkgenError, match=pattern) as info:
        Dataset("bad", *change(_arrays()), classes=("a", "b"))
    assert str(info.value).startswith("bad: ")


def test_dataset_allows_empty_splits():
    x, y = np.zeros((0, 1, 2, 2), np.uint8), np.zeros(0, np.int64)
    data = Dataset("empty", x, y, x, y, classes=("a",))
    assert len(data.y_train) == 0


# -------------------------------------------------------------------------------------- content_hash


def test_content_hash_equal_for_equal_data():
    a = Dataset("a", *_arrays(), classes=("a", "b"))
    b = Dataset("other-name", *[arr.copy() for arr in _arrays()], classes=("x", "y"))
    assert a.content_hash() == b.content_hash()
    assert len(a.content_hash()) == 16
    int(a.content_hash(), 16)  # hexadecimal


@pytest.mark.parametrize("which", range(4))
def test_content_hash_changes_with_one_byte(which):
    arrays = list(_arrays())
    before = Dataset("a", *arrays, classes=("a", "b")).content_hash()
    changed = arrays[which].copy()
    changed.flat[-1] = 1 - changed.flat[-1] if which % 2 else changed.flat[-1] + 1
    arrays[which] = changed
    assert Dataset("a", *arrays, classes=("a", "b")).content_hash() != before


def test_content_hash_depends_on_shape_and_handles_non_contiguous():
    x = np.arange(24, dtype=np.uint8).reshape(6, 1, 2, 2)
    y = np.zeros(6, np.int64)
    a = Dataset("a", x, y, x, y, classes=("a",))
    # same bytes, different shape
    b = Dataset("a", x.reshape(6, 1, 1, 4), y, x.reshape(6, 1, 1, 4), y, classes=("a",))
    assert a.content_hash() != b.content_hash()
    # a non-contiguous view hashes like its contiguous copy
    view = np.arange(48, dtype=np.uint8).reshape(12, 1, 2, 2)[::2]
    c = Dataset("a", view, y, view, y, classes=("a",))
    d = Dataset("a", view.copy(), y, view.copy(), y, classes=("a",))
    assert c.content_hash() == d.content_hash()


# ------------------------------------------------------------------------------------------------ IDX


def test_subset_refuses_booleans(digits):
    with pytest.raises(RethinkgenError, match="True"):
        digits.subset(True)


