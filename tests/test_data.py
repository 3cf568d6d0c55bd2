"""Tests of the data sources: built-in, IDX (MNIST-style), CIFAR python batches, downloads, status."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from rethinkgen.data import SOURCES, Dataset, load, source_status
from rethinkgen.data import cifar as cifar_mod
from rethinkgen.data import idx as idx_mod
from rethinkgen.data.cifar import write_batch
from rethinkgen.data.download import cache_root, fetch, md5sum
from rethinkgen.data.idx import write_idx
from rethinkgen.errors import RethinkgenError

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_STEMS = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No test may see (or write into) a user's real cache: point RETHINKGEN_DATA at an empty folder."""
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def digits():
    return load("digits")


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


def _arrays(n_train=6, n_test=4):
    return (np.zeros((n_train, 1, 2, 2), np.uint8), np.arange(n_train, dtype=np.int64) % 2,
            np.zeros((n_test, 1, 2, 2), np.uint8), np.arange(n_test, dtype=np.int64) % 2)


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


def _idx_arrays(n_train=20, n_test=8, h=5, w=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, size=(n_train, h, w), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(n_test, h, w), dtype=np.uint8),
        "y_test": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }


def _write_idx_dir(directory: Path, arrays: dict, gz: bool) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, stem in IDX_STEMS.items():
        paths[key] = directory / (stem + (".gz" if gz else ""))
        write_idx(paths[key], arrays[key])
    return paths


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_idx_round_trip(tmp_path, name, gz):
    arrays = _idx_arrays()
    paths = _write_idx_dir(tmp_path / "files", arrays, gz)
    if gz:
        assert paths["x_train"].read_bytes()[:2] == b"\x1f\x8b"  # really gzipped
    else:
        assert paths["x_train"].read_bytes()[:4] == b"\x00\x00\x08\x03"  # really raw IDX, 3 dims
    data = load(name, data_dir=tmp_path / "files")
    assert data.name == name
    assert data.x_train.shape == (20, 1, 5, 4) and data.x_test.shape == (8, 1, 5, 4)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    np.testing.assert_array_equal(data.x_train[:, 0], arrays["x_train"])
    np.testing.assert_array_equal(data.x_test[:, 0], arrays["x_test"])
    np.testing.assert_array_equal(data.y_train, arrays["y_train"].astype(np.int64))
    np.testing.assert_array_equal(data.y_test, arrays["y_test"].astype(np.int64))
    assert data.num_classes == 10
    # the arrays are writable copies, not views on a read-only file buffer
    assert data.x_train.flags.writeable
    if name == "fashion-mnist":
        assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    else:
        assert data.classes == tuple(str(d) for d in range(10))


def test_idx_mixed_plain_and_gzip_and_string_data_dir(tmp_path):
    arrays = _idx_arrays(seed=1)
    for i, (key, stem) in enumerate(IDX_STEMS.items()):
        write_idx(tmp_path / (stem + (".gz" if i % 2 else "")), arrays[key])
    data = load("mnist", data_dir=str(tmp_path))
    np.testing.assert_array_equal(data.x_train[:, 0], arrays["x_train"])
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])


def test_idx_found_through_rethinkgen_data(tmp_path, monkeypatch):
    arrays = _idx_arrays(seed=2)
    _write_idx_dir(tmp_path / "fashion-mnist", arrays, gz=True)
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path))
    assert idx_mod.locate("fashion-mnist") == tmp_path / "fashion-mnist"
    data = load("fashion-mnist")
    np.testing.assert_array_equal(data.x_test[:, 0], arrays["x_test"])


def test_read_idx_is_kept_until_the_file_changes(tmp_path):
    path = tmp_path / "a.idx.gz"
    write_idx(path, np.zeros((2, 3, 4), dtype=np.uint8))
    first = idx_mod.read_idx(path, ndim=3)
    assert idx_mod.read_idx(path, ndim=3) is first  # read once per process
    assert not first.flags.writeable  # so no caller can change what the next one reads
    write_idx(path, np.ones((3, 3, 4), dtype=np.uint8))
    np.testing.assert_array_equal(idx_mod.read_idx(path, ndim=3), np.ones((3, 3, 4)))


def test_write_idx_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, array)
        np.testing.assert_array_equal(idx_mod.read_idx(tmp_path / name, ndim=3), array)
    raw = (tmp_path / "a.idx").read_bytes()
    assert raw[:4] == bytes([0, 0, 8, 3])
    assert raw[4:16] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + (4).to_bytes(4, "big")
    assert len(raw) == 16 + 24


def _assert_idx_error(directory, name, file_fragment, *patterns):
    with pytest.raises(RethinkgenError) as info:
        load(name, data_dir=directory)
    message = str(info.value)
    assert file_fragment in message, message
    for pattern in patterns:
        assert pattern in message, message
    return message


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_idx_wrong_number_of_dimensions(tmp_path, gz):
    arrays = _idx_arrays()
    arrays["y_train"] = arrays["y_train"].reshape(20, 1, 1)  # 3 dims where 1 is expected
    _write_idx_dir(tmp_path, arrays, gz)
    _assert_idx_error(tmp_path, "fashion-mnist", "train-labels-idx1-ubyte", "wrong magic number",
                      "0x00000803", "expected 0x00000801")


def test_idx_corrupt_type_byte(tmp_path):
    paths = _write_idx_dir(tmp_path, _idx_arrays(), gz=False)
    raw = bytearray(paths["x_test"].read_bytes())
    raw[2] = 0x0D  # float instead of unsigned byte
    paths["x_test"].write_bytes(bytes(raw))
    _assert_idx_error(tmp_path, "mnist", "t10k-images-idx3-ubyte", "wrong magic number", "0x00000d03")


def test_idx_images_file_given_as_labels(tmp_path):
    arrays = _idx_arrays()
    paths = _write_idx_dir(tmp_path, arrays, gz=False)
    paths["y_test"].write_bytes(paths["x_test"].read_bytes())
    _assert_idx_error(tmp_path, "mnist", "t10k-labels-idx1-ubyte", "wrong magic number")


def test_idx_truncated_plain(tmp_path):
    paths = _write_idx_dir(tmp_path, _idx_arrays(), gz=False)
    raw = paths["x_train"].read_bytes()
    paths["x_train"].write_bytes(raw[:-7])
    message = _assert_idx_error(tmp_path, "fashion-mnist", "train-images-idx3-ubyte", "truncated")
    assert "(20, 5, 4) = 400 bytes" in message and "file has 393" in message


def test_idx_too_long_plain(tmp_path):
    paths = _write_idx_dir(tmp_path, _idx_arrays(), gz=False)
    paths["x_test"].write_bytes(paths["x_test"].read_bytes() + b"\x00\x01")
    _assert_idx_error(tmp_path, "fashion-mnist", "t10k-images-idx3-ubyte", "too long")


def test_idx_truncated_header(tmp_path):
    paths = _write_idx_dir(tmp_path, _idx_arrays(), gz=False)
    paths["x_train"].write_bytes(paths["x_train"].read_bytes()[:10])
    _assert_idx_error(tmp_path, "fashion-mnist", "train-images-idx3-ubyte", "truncated IDX header")


@pytest.mark.parametrize("cut", [1, 8, 30])
def test_idx_truncated_gzip_stream(tmp_path, cut):
    """Cutting bytes off a .gz file must give a RethinkgenError, not gzip's EOFError."""
    paths = _write_idx_dir(tmp_path, _idx_arrays(), gz=True)
    raw = paths["x_train"].read_bytes()
    paths["x_train"].write_bytes(raw[:-cut])
    message = _assert_idx_error(tmp_path, "fashion-mnist", "train-images-idx3-ubyte.gz")
    assert "cannot read" in message or "truncated" in message


def test_idx_truncated_content_inside_valid_gzip(tmp_path):
    paths = _write_idx_dir(tmp_path, _idx_arrays(), gz=True)
    content = gzip.decompress(paths["x_train"].read_bytes())
    paths["x_train"].write_bytes(gzip.compress(content[:-5]))
    _assert_idx_error(tmp_path, "fashion-mnist", "train-images-idx3-ubyte.gz", "truncated", "file has 395")


def test_idx_not_gzip_but_named_gz(tmp_path):
    paths = _write_idx_dir(tmp_path, _idx_arrays(), gz=True)
    paths["y_train"].write_bytes(b"this is not gzip at all")
    _assert_idx_error(tmp_path, "mnist", "train-labels-idx1-ubyte.gz", "cannot read")


@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_image_label_count_mismatch(tmp_path, split):
    arrays = _idx_arrays()
    arrays[f"y_{split}"] = arrays[f"y_{split}"][:-1]
    _write_idx_dir(tmp_path, arrays, gz=False)
    images = IDX_STEMS[f"x_{split}"]
    n = len(arrays[f"x_{split}"])
    _assert_idx_error(tmp_path, "mnist", images, f"{n} images but", IDX_STEMS[f"y_{split}"], f"{n - 1} labels")


@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_label_out_of_range(tmp_path, split):
    arrays = _idx_arrays()
    arrays[f"y_{split}"] = arrays[f"y_{split}"].copy()
    arrays[f"y_{split}"][3] = 10
    _write_idx_dir(tmp_path, arrays, gz=True)
    _assert_idx_error(tmp_path, "fashion-mnist", IDX_STEMS[f"y_{split}"], "label 10 outside 0..9")


def test_idx_train_test_image_size_mismatch(tmp_path):
    arrays = _idx_arrays()
    arrays["x_test"] = np.zeros((8, 6, 4), np.uint8)
    _write_idx_dir(tmp_path, arrays, gz=False)
    with pytest.raises(RethinkgenError, match="differ in shape"):
        load("mnist", data_dir=tmp_path)


def test_idx_missing_directory(tmp_path):
    missing = tmp_path / "no-such-dir"
    message = _assert_idx_error(missing, "fashion-mnist", str(missing), "does not exist")
    assert message.startswith("fashion-mnist:")


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_idx_directory_without_files(tmp_path, name):
    message = _assert_idx_error(tmp_path, name, str(tmp_path), "--download", "not found")
    for stem in IDX_STEMS.values():
        assert stem in message


def test_idx_directory_with_only_some_files(tmp_path):
    arrays = _idx_arrays()
    paths = _write_idx_dir(tmp_path, arrays, gz=True)
    paths["y_test"].unlink()
    assert idx_mod.locate("mnist", tmp_path) is None
    _assert_idx_error(tmp_path, "mnist", str(tmp_path), "--download")


def test_idx_download_from_file_url(tmp_path, monkeypatch):
    """The --download path, fed from file:// URLs with matching checksums: no network involved."""
    arrays = _idx_arrays(seed=4)
    source = tmp_path / "mirror"
    paths = _write_idx_dir(source, arrays, gz=True)
    cache = tmp_path / "cache"
    monkeypatch.setenv("RETHINKGEN_DATA", str(cache))
    monkeypatch.setitem(idx_mod.SOURCES["mnist"], "url", source.as_uri() + "/")
    monkeypatch.setitem(idx_mod.SOURCES["mnist"], "md5", {key: md5sum(p) for key, p in paths.items()})
    monkeypatch.setitem(idx_mod.SOURCES["mnist"], "system_dirs", [])
    with pytest.raises(RethinkgenError, match="--download"):
        load("mnist")
    data = load("mnist", download=True)
    np.testing.assert_array_equal(data.x_train[:, 0], arrays["x_train"])
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])
    for stem in IDX_STEMS.values():
        assert (cache / "mnist" / (stem + ".gz")).is_file()
    assert not list((cache / "mnist").glob("*.part"))
    # now cached: found without downloading
    assert load("mnist").content_hash() == data.content_hash()
    # with a data directory given, the files go there instead of the cache
    target = tmp_path / "mine"
    assert load("mnist", data_dir=target, download=True).content_hash() == data.content_hash()
    assert all((target / (stem + ".gz")).is_file() for stem in IDX_STEMS.values())


def test_subset_refuses_booleans(digits):
    with pytest.raises(RethinkgenError, match="True"):
        digits.subset(True)


def test_cifar_labels_that_are_not_integers_name_the_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    with open(folder / "data_batch_3", "wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": None}, handle)
    with pytest.raises(RethinkgenError, match="data_batch_3: labels must be integers"):
        load("cifar10", data_dir=folder)


@pytest.mark.skipif(not FASHION_SYSTEM_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_system_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path))  # an empty cache: must come from the system dir
    assert idx_mod.locate("fashion-mnist") == FASHION_SYSTEM_DIR
    data = load("fashion-mnist")
    assert data.x_train.shape == (60000, 1, 28, 28)
    assert data.x_test.shape == (10000, 1, 28, 28)
    assert data.image_shape == (1, 28, 28)
    assert data.num_classes == 10
    assert np.bincount(data.y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(data.y_test, minlength=10).tolist() == [1000] * 10
    assert data.x_train.min() == 0 and data.x_train.max() == 255


# ---------------------------------------------------------------------------------------------- CIFAR


def _cifar_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def _write_cifar10(folder: Path, per_batch=4, n_test=5):
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"name{k}" for k in range(10)]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [n.encode() for n in names], b"num_vis": 3072}, handle)
    xs, ys = [], []
    for i in range(1, 6):
        x = _cifar_images(per_batch, seed=i)
        y = [(i + j) % 10 for j in range(per_batch)]
        write_batch(folder / f"data_batch_{i}", x, y)
        xs.append(x)
        ys += y
    x_test = _cifar_images(n_test, seed=99)
    y_test = [(3 * j) % 10 for j in range(n_test)]
    write_batch(folder / "test_batch", x_test, y_test)
    return names, np.concatenate(xs), np.array(ys), x_test, np.array(y_test)


def _write_cifar100(folder: Path, n_train=7, n_test=3):
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"fine{k}" for k in range(100)]
    with open(folder / "meta", "wb") as handle:
        pickle.dump({b"fine_label_names": [n.encode() for n in names],
                     b"coarse_label_names": [b"c"] * 20}, handle)
    x_train, y_train = _cifar_images(n_train, 1), [99, 0, 50, 7, 99, 13, 1][:n_train]
    x_test, y_test = _cifar_images(n_test, 2), [42, 98, 0][:n_test]
    write_batch(folder / "train", x_train, y_train, labels_key=b"fine_labels")
    write_batch(folder / "test", x_test, y_test, labels_key=b"fine_labels")
    return names, x_train, np.array(y_train), x_test, np.array(y_test)


def _check_cifar(data, expected, name):
    names, x_train, y_train, x_test, y_test = expected
    assert data.name == name
    assert data.classes == tuple(names)
    assert data.x_train.shape == (len(y_train), 3, 32, 32) and data.x_test.shape == (len(y_test), 3, 32, 32)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    np.testing.assert_array_equal(data.x_train, x_train)
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.x_test, x_test)
    np.testing.assert_array_equal(data.y_test, y_test)


@pytest.mark.parametrize("point_at", ["parent", "folder"])
def test_cifar10_round_trip(tmp_path, point_at):
    folder = tmp_path / "cifar-10-batches-py"
    expected = _write_cifar10(folder)
    data = load("cifar10", data_dir=tmp_path if point_at == "parent" else folder)
    _check_cifar(data, expected, "cifar10")
    assert len(data.y_train) == 20 and data.num_classes == 10
    # batches are concatenated in order data_batch_1..5
    np.testing.assert_array_equal(data.x_train[:4], _cifar_images(4, seed=1))
    np.testing.assert_array_equal(data.x_train[16:], _cifar_images(4, seed=5))


@pytest.mark.parametrize("point_at", ["parent", "folder"])
def test_cifar100_round_trip(tmp_path, point_at):
    folder = tmp_path / "cifar-100-python"
    expected = _write_cifar100(folder)
    data = load("cifar100", data_dir=str(tmp_path if point_at == "parent" else folder))
    _check_cifar(data, expected, "cifar100")
    assert data.num_classes == 100


def test_cifar_found_through_rethinkgen_data(tmp_path, monkeypatch):
    expected = _write_cifar10(tmp_path / "cifar-10-batches-py")
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path))
    assert cifar_mod.locate("cifar10") == tmp_path / "cifar-10-batches-py"
    _check_cifar(load("cifar10"), expected, "cifar10")


def test_write_batch_layout(tmp_path):
    images = _cifar_images(2, 0)
    write_batch(tmp_path / "b", images, np.array([1, 2]))
    with open(tmp_path / "b", "rb") as handle:
        content = pickle.load(handle, encoding="bytes")
    assert content[b"data"].shape == (2, 3072)
    # row-major channel planes, as in the real CIFAR files: first 1024 values are the red plane
    np.testing.assert_array_equal(content[b"data"][0, :1024], images[0, 0].ravel())
    assert content[b"labels"] == [1, 2]


@pytest.mark.parametrize("victim", ["data_batch_3", "test_batch"])
def test_cifar_missing_batch(tmp_path, victim):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    (folder / victim).unlink()
    with pytest.raises(RethinkgenError, match="missing file") as info:
        load("cifar10", data_dir=tmp_path)
    assert str(folder / victim) in str(info.value)


@pytest.mark.parametrize("cut", [1, 100, 3000])
def test_cifar_truncated_batch(tmp_path, cut):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    path = folder / "data_batch_2"
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(RethinkgenError, match="not a readable CIFAR python batch") as info:
        load("cifar10", data_dir=folder)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\x80\x04", b"cno_such_module_xyz\nThing\n(tR."],
                         ids=["empty", "cut-after-protocol", "foreign-class"])
def test_cifar_unreadable_batch_of_any_kind(tmp_path, content):
    """Empty files (EOFError) and foreign pickles (ModuleNotFoundError) are RethinkgenErrors too."""
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    path = folder / "data_batch_1"
    path.write_bytes(content)
    with pytest.raises(RethinkgenError, match="not a readable CIFAR python batch") as info:
        load("cifar10", data_dir=folder)
    assert str(path) in str(info.value)


def test_cifar_garbage_and_non_dict_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    (folder / "data_batch_1").write_bytes(b"\x00garbage")
    with pytest.raises(RethinkgenError, match="data_batch_1"):
        load("cifar10", data_dir=folder)
    with open(folder / "data_batch_1", "wb") as handle:
        pickle.dump([1, 2, 3], handle)
    with pytest.raises(RethinkgenError, match=r"data_batch_1: expected a pickled dict, got list"):
        load("cifar10", data_dir=folder)


@pytest.mark.parametrize("width", [3071, 3073, 1024])
def test_cifar_wrong_data_width(tmp_path, width):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    path = folder / "data_batch_4"
    with open(path, "wb") as handle:
        pickle.dump({b"data": np.zeros((4, width), np.uint8), b"labels": [0, 1, 2, 3]}, handle)
    with pytest.raises(RethinkgenError, match=r"data must be uint8 \[N, 3072\]") as info:
        load("cifar10", data_dir=folder)
    assert str(path) in str(info.value) and str(width) in str(info.value)


def test_cifar_wrong_data_dtype(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    path = folder / "test_batch"
    with open(path, "wb") as handle:
        pickle.dump({b"data": np.zeros((5, 3072), np.float32), b"labels": [0] * 5}, handle)
    with pytest.raises(RethinkgenError, match="float32") as info:
        load("cifar10", data_dir=folder)
    assert str(path) in str(info.value)


def test_cifar_label_count_mismatch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    path = folder / "data_batch_5"
    write_batch(path, _cifar_images(4, 0), [1, 2, 3])
    with pytest.raises(RethinkgenError, match="4 images but 3 labels") as info:
        load("cifar10", data_dir=folder)
    assert str(path) in str(info.value)


def test_cifar_missing_labels_key(tmp_path):
    folder = tmp_path / "cifar-100-python"
    _write_cifar100(folder)
    # a CIFAR-100 batch written with CIFAR-10's key: no fine labels
    write_batch(folder / "train", _cifar_images(7, 1), [0] * 7, labels_key=b"labels")
    with pytest.raises(RethinkgenError, match="fine_labels") as info:
        load("cifar100", data_dir=folder)
    assert str(folder / "train") in str(info.value)


def test_cifar_meta_missing_key(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"fine_label_names": []}, handle)
    with pytest.raises(RethinkgenError, match="label_names") as info:
        load("cifar10", data_dir=folder)
    assert "batches.meta" in str(info.value)


def test_cifar_label_outside_class_range(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    write_batch(folder / "test_batch", _cifar_images(5, 0), [0, 1, 2, 3, 10])
    with pytest.raises(RethinkgenError, match="outside 0..9"):
        load("cifar10", data_dir=folder)


def test_cifar_missing_directory_and_empty_directory(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(RethinkgenError, match="does not exist") as info:
        load("cifar10", data_dir=missing)
    assert str(missing) in str(info.value)
    with pytest.raises(RethinkgenError, match="--download") as info:
        load("cifar100", data_dir=tmp_path)
    assert "cifar-100-python" in str(info.value) and str(tmp_path) in str(info.value)


def test_cifar_download_from_file_url(tmp_path, monkeypatch):
    """--download for CIFAR fed from a local tar.gz through a file:// URL."""
    staging = tmp_path / "staging"
    expected = _write_cifar10(staging / "cifar-10-batches-py")
    archive = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    cache = tmp_path / "cache"
    monkeypatch.setenv("RETHINKGEN_DATA", str(cache))
    monkeypatch.setitem(cifar_mod.SOURCES["cifar10"], "url", archive.as_uri())
    monkeypatch.setitem(cifar_mod.SOURCES["cifar10"], "md5", md5sum(archive))
    data = load("cifar10", download=True)
    _check_cifar(data, expected, "cifar10")
    assert (cache / "cifar-10-python.tar.gz").is_file()
    assert (cache / "cifar-10-batches-py" / "batches.meta").is_file()


# ----------------------------------------------------------------------------------- load() options


def test_load_unknown_name_lists_allowed():
    with pytest.raises(RethinkgenError) as info:
        load("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in ("digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "synthetic"):
        assert name in message


def test_load_unknown_option_is_named():
    with pytest.raises(RethinkgenError) as info:
        load("digits", foo=1)
    message = str(info.value)
    assert "foo" in message and "'digits'" in message and "none" in message


def test_load_unknown_option_lists_allowed_ones(tmp_path):
    with pytest.raises(RethinkgenError) as info:
        load("fashion-mnist", data_dir=tmp_path, bar=2, alpha=3)
    message = str(info.value)
    assert "alpha, bar" in message
    assert "data_dir" in message and "download" in message
    with pytest.raises(RethinkgenError, match="n_train"):
        load("synthetic", size=4, nope=1)


def test_sources_registry():
    assert list(SOURCES) == ["digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "synthetic", "imagefolder"]
    assert SOURCES["digits"].locate is None and SOURCES["synthetic"].locate is None
    assert all(SOURCES[n].locate is not None for n in ("fashion-mnist", "mnist", "cifar10", "cifar100"))


# ------------------------------------------------------------------------------------------ download


def test_cache_root_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("RETHINKGEN_DATA")
    assert cache_root() == Path.home() / ".cache" / "rethinkgen"
    monkeypatch.setenv("RETHINKGEN_DATA", "")
    assert cache_root() == Path.home() / ".cache" / "rethinkgen"


def test_md5sum(tmp_path):
    path = tmp_path / "f"
    payload = bytes(range(256)) * 5000  # more than one 1 MiB chunk would be nice but not needed
    path.write_bytes(payload)
    assert md5sum(path) == hashlib.md5(payload).hexdigest()


def test_fetch_file_url_with_right_md5(tmp_path):
    source = tmp_path / "src.bin"
    payload = b"rethinkgen" * 1000
    source.write_bytes(payload)
    destination = tmp_path / "deep" / "dir" / "out.bin"
    result = fetch(source.as_uri(), destination, hashlib.md5(payload).hexdigest())
    assert result == destination
    assert destination.read_bytes() == payload
    assert not list(destination.parent.glob("*.part"))


def test_fetch_wrong_md5_keeps_nothing(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"payload")
    destination = tmp_path / "out" / "out.bin"
    with pytest.raises(RethinkgenError, match="MD5") as info:
        fetch(source.as_uri(), destination, "0" * 32)
    assert "0" * 32 in str(info.value) and hashlib.md5(b"payload").hexdigest() in str(info.value)
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == []  # no leftover .part file


def test_fetch_existing_file_with_right_md5_is_not_downloaded_again(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"first")
    destination = tmp_path / "out.bin"
    md5 = hashlib.md5(b"first").hexdigest()
    fetch(source.as_uri(), destination, md5)
    mtime = destination.stat().st_mtime_ns
    missing = (tmp_path / "does-not-exist.bin").as_uri()
    assert fetch(missing, destination, md5) == destination  # would fail if it tried to download
    assert destination.read_bytes() == b"first"
    assert destination.stat().st_mtime_ns == mtime


def test_fetch_replaces_existing_file_with_wrong_md5(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"good")
    destination = tmp_path / "out.bin"
    destination.write_bytes(b"stale, from an interrupted run")
    fetch(source.as_uri(), destination, hashlib.md5(b"good").hexdigest())
    assert destination.read_bytes() == b"good"


def test_fetch_unreachable_url_is_a_rethinkgen_error(tmp_path):
    destination = tmp_path / "out" / "x.bin"
    url = (tmp_path / "does-not-exist.bin").as_uri()
    with pytest.raises(RethinkgenError, match="could not download") as info:
        fetch(url, destination, "0" * 32)
    assert url in str(info.value)
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == []


def test_fetch_wrong_md5_keeps_an_existing_good_file_untouched(tmp_path):
    """A failed re-download must not destroy what was there."""
    destination = tmp_path / "out.bin"
    destination.write_bytes(b"old")
    source = tmp_path / "src.bin"
    source.write_bytes(b"new")
    with pytest.raises(RethinkgenError):
        fetch(source.as_uri(), destination, hashlib.md5(b"something else").hexdigest())
    assert destination.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "src.bin"]


# ------------------------------------------------------------------------------------- source_status


def test_source_status_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    rows = source_status(data_dir=empty)
    assert [row["name"] for row in rows] == list(SOURCES)
    for row in rows:
        assert {"name", "found", "where", "shape"} <= set(row)
    by_name = {row["name"]: row for row in rows}
    assert by_name["digits"]["found"] is True
    assert by_name["digits"]["where"] == "built in"
    assert by_name["digits"]["shape"] == "1347 train / 450 test, images 1x8x8, 10 classes"
    assert by_name["synthetic"]["found"] is True
    for name in ("cifar10", "cifar100", "fashion-mnist", "mnist"):
        assert by_name[name]["found"] is False, name
        assert by_name[name]["where"] == "not found"
        assert by_name[name]["shape"] == ""


def test_source_status_finds_and_describes_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path / "cache"))
    _write_cifar10(tmp_path / "cifar-10-batches-py")
    by_name = {row["name"]: row for row in source_status(data_dir=tmp_path)}
    assert by_name["cifar10"]["found"] is True
    assert by_name["cifar10"]["where"] == str(tmp_path / "cifar-10-batches-py")
    assert by_name["cifar10"]["shape"] == "20 train / 5 test, images 3x32x32, 10 classes"
    assert by_name["cifar100"]["found"] is False


def test_source_status_reports_unreadable_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path / "cache"))
    paths = _write_idx_dir(tmp_path, _idx_arrays(), gz=False)
    paths["x_train"].write_bytes(paths["x_train"].read_bytes()[:-3])
    by_name = {row["name"]: row for row in source_status(data_dir=tmp_path)}
    row = by_name["mnist"]
    assert row["found"] is False
    assert row["where"] == str(tmp_path)
    assert row["shape"].startswith("unreadable:") and "truncated" in row["shape"]
