"""IDX files (MNIST, Fashion-MNIST): reading, writing, downloading, and every way a file can be bad."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from helpers import IDX_STEMS, idx_arrays, write_idx_dir
from rethinkgen.data import idx as idx_mod, load
from rethinkgen.data.download import md5sum
from rethinkgen.data.idx import write_idx
from rethinkgen.errors import RethinkgenError

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


pytestmark = pytest.mark.usefixtures("isolated_cache")


def _assert_idx_error(directory, name, file_fragment, *patterns):
    with pytest.raises(RethinkgenError) as info:
        load(name, data_dir=directory)
    message = str(info.value)
    assert file_fragment in message, message
    for pattern in patterns:
        assert pattern in message, message
    return message


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_idx_round_trip(tmp_path, name, gz):
    arrays = idx_arrays()
    paths = write_idx_dir(tmp_path / "files", arrays, gz)
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
    arrays = idx_arrays(seed=1)
    for i, (key, stem) in enumerate(IDX_STEMS.items()):
        write_idx(tmp_path / (stem + (".gz" if i % 2 else "")), arrays[key])
    data = load("mnist", data_dir=str(tmp_path))
    np.testing.assert_array_equal(data.x_train[:, 0], arrays["x_train"])
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])


def test_idx_found_through_rethinkgen_data(tmp_path, monkeypatch):
    arrays = idx_arrays(seed=2)
    write_idx_dir(tmp_path / "fashion-mnist", arrays, gz=True)
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


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_idx_wrong_number_of_dimensions(tmp_path, gz):
    arrays = idx_arrays()
    arrays["y_train"] = arrays["y_train"].reshape(20, 1, 1)  # 3 dims where 1 is expected
    write_idx_dir(tmp_path, arrays, gz)
    _assert_idx_error(tmp_path, "fashion-mnist", "train-labels-idx1-ubyte", "wrong magic number",
                      "0x00000803", "expected 0x00000801")


def test_idx_corrupt_type_byte(tmp_path):
    paths = write_idx_dir(tmp_path, idx_arrays(), gz=False)
    raw = bytearray(paths["x_test"].read_bytes())
    raw[2] = 0x0D  # float instead of unsigned byte
    paths["x_test"].write_bytes(bytes(raw))
    _assert_idx_error(tmp_path, "mnist", "t10k-images-idx3-ubyte", "wrong magic number", "0x00000d03")


def test_idx_images_file_given_as_labels(tmp_path):
    arrays = idx_arrays()
    paths = write_idx_dir(tmp_path, arrays, gz=False)
    paths["y_test"].write_bytes(paths["x_test"].read_bytes())
    _assert_idx_error(tmp_path, "mnist", "t10k-labels-idx1-ubyte", "wrong magic number")


def test_idx_truncated_plain(tmp_path):
    paths = write_idx_dir(tmp_path, idx_arrays(), gz=False)
    raw = paths["x_train"].read_bytes()
    paths["x_train"].write_bytes(raw[:-7])
    message = _assert_idx_error(tmp_path, "fashion-mnist", "train-images-idx3-ubyte", "truncated")
    assert "(20, 5, 4) = 400 bytes" in message and "file has 393" in message


def test_idx_too_long_plain(tmp_path):
    paths = write_idx_dir(tmp_path, idx_arrays(), gz=False)
    paths["x_test"].write_bytes(paths["x_test"].read_bytes() + b"\x00\x01")
    _assert_idx_error(tmp_path, "fashion-mnist", "t10k-images-idx3-ubyte", "too long")


def test_idx_truncated_header(tmp_path):
    paths = write_idx_dir(tmp_path, idx_arrays(), gz=False)
    paths["x_train"].write_bytes(paths["x_train"].read_bytes()[:10])
    _assert_idx_error(tmp_path, "fashion-mnist", "train-images-idx3-ubyte", "truncated IDX header")


@pytest.mark.parametrize("cut", [1, 8, 30])
def test_idx_truncated_gzip_stream(tmp_path, cut):
    """Cutting bytes off a .gz file must give a RethinkgenError, not gzip's EOFError."""
    paths = write_idx_dir(tmp_path, idx_arrays(), gz=True)
    raw = paths["x_train"].read_bytes()
    paths["x_train"].write_bytes(raw[:-cut])
    message = _assert_idx_error(tmp_path, "fashion-mnist", "train-images-idx3-ubyte.gz")
    assert "cannot read" in message or "truncated" in message


def test_idx_truncated_content_inside_valid_gzip(tmp_path):
    paths = write_idx_dir(tmp_path, idx_arrays(), gz=True)
    content = gzip.decompress(paths["x_train"].read_bytes())
    paths["x_train"].write_bytes(gzip.compress(content[:-5]))
    _assert_idx_error(tmp_path, "fashion-mnist", "train-images-idx3-ubyte.gz", "truncated", "file has 395")


def test_idx_not_gzip_but_named_gz(tmp_path):
    paths = write_idx_dir(tmp_path, idx_arrays(), gz=True)
    paths["y_train"].write_bytes(b"this is not gzip at all")
    _assert_idx_error(tmp_path, "mnist", "train-labels-idx1-ubyte.gz", "cannot read")


@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_image_label_count_mismatch(tmp_path, split):
    arrays = idx_arrays()
    arrays[f"y_{split}"] = arrays[f"y_{split}"][:-1]
    write_idx_dir(tmp_path, arrays, gz=False)
    images = IDX_STEMS[f"x_{split}"]
    n = len(arrays[f"x_{split}"])
    _assert_idx_error(tmp_path, "mnist", images, f"{n} images but", IDX_STEMS[f"y_{split}"], f"{n - 1} labels")


@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_label_out_of_range(tmp_path, split):
    arrays = idx_arrays()
    arrays[f"y_{split}"] = arrays[f"y_{split}"].copy()
    arrays[f"y_{split}"][3] = 10
    write_idx_dir(tmp_path, arrays, gz=True)
    _assert_idx_error(tmp_path, "fashion-mnist", IDX_STEMS[f"y_{split}"], "label 10 outside 0..9")


def test_idx_train_test_image_size_mismatch(tmp_path):
    arrays = idx_arrays()
    arrays["x_test"] = np.zeros((8, 6, 4), np.uint8)
    write_idx_dir(tmp_path, arrays, gz=False)
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
    arrays = idx_arrays()
    paths = write_idx_dir(tmp_path, arrays, gz=True)
    paths["y_test"].unlink()
    assert idx_mod.locate("mnist", tmp_path) is None
    _assert_idx_error(tmp_path, "mnist", str(tmp_path), "--download")


def test_idx_download_from_file_url(tmp_path, monkeypatch):
    """The --download path, fed from file:// URLs with matching checksums: no network involved."""
    arrays = idx_arrays(seed=4)
    source = tmp_path / "mirror"
    paths = write_idx_dir(source, arrays, gz=True)
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
    assert not list((cache / "mnist").glob("*.tmp"))
    # now cached: found without downloading
    assert load("mnist").content_hash() == data.content_hash()
    # with a data directory given, the files go there instead of the cache
    target = tmp_path / "mine"
    assert load("mnist", data_dir=target, download=True).content_hash() == data.content_hash()
    assert all((target / (stem + ".gz")).is_file() for stem in IDX_STEMS.values())


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


