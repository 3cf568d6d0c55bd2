"""The CIFAR-10/100 python batches: reading, writing, downloading, and every way a batch can be bad."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from helpers import cifar_images, write_cifar10
from rethinkgen.data import cifar as cifar_mod, load
from rethinkgen.data.cifar import write_batch
from rethinkgen.data.download import md5sum
from rethinkgen.errors import RethinkgenError

pytestmark = pytest.mark.usefixtures("isolated_cache")


def _write_cifar100(folder: Path, n_train=7, n_test=3):
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"fine{k}" for k in range(100)]
    with open(folder / "meta", "wb") as handle:
        pickle.dump({b"fine_label_names": [n.encode() for n in names],
                     b"coarse_label_names": [b"c"] * 20}, handle)
    x_train, y_train = cifar_images(n_train, 1), [99, 0, 50, 7, 99, 13, 1][:n_train]
    x_test, y_test = cifar_images(n_test, 2), [42, 98, 0][:n_test]
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


def test_cifar_labels_that_are_not_integers_name_the_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    with open(folder / "data_batch_3", "wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": None}, handle)
    with pytest.raises(RethinkgenError, match="data_batch_3: labels must be integers"):
        load("cifar10", data_dir=folder)


@pytest.mark.parametrize("point_at", ["parent", "folder"])
def test_cifar10_round_trip(tmp_path, point_at):
    folder = tmp_path / "cifar-10-batches-py"
    expected = write_cifar10(folder)
    data = load("cifar10", data_dir=tmp_path if point_at == "parent" else folder)
    _check_cifar(data, expected, "cifar10")
    assert len(data.y_train) == 20 and data.num_classes == 10
    # batches are concatenated in order data_batch_1..5
    np.testing.assert_array_equal(data.x_train[:4], cifar_images(4, seed=1))
    np.testing.assert_array_equal(data.x_train[16:], cifar_images(4, seed=5))


@pytest.mark.parametrize("point_at", ["parent", "folder"])
def test_cifar100_round_trip(tmp_path, point_at):
    folder = tmp_path / "cifar-100-python"
    expected = _write_cifar100(folder)
    data = load("cifar100", data_dir=str(tmp_path if point_at == "parent" else folder))
    _check_cifar(data, expected, "cifar100")
    assert data.num_classes == 100


def test_cifar_found_through_rethinkgen_data(tmp_path, monkeypatch):
    expected = write_cifar10(tmp_path / "cifar-10-batches-py")
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path))
    assert cifar_mod.locate("cifar10") == tmp_path / "cifar-10-batches-py"
    _check_cifar(load("cifar10"), expected, "cifar10")


def test_write_batch_layout(tmp_path):
    images = cifar_images(2, 0)
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
    write_cifar10(folder)
    (folder / victim).unlink()
    with pytest.raises(RethinkgenError, match="missing file") as info:
        load("cifar10", data_dir=tmp_path)
    assert str(folder / victim) in str(info.value)


@pytest.mark.parametrize("cut", [1, 100, 3000])
def test_cifar_truncated_batch(tmp_path, cut):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
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
    write_cifar10(folder)
    path = folder / "data_batch_1"
    path.write_bytes(content)
    with pytest.raises(RethinkgenError, match="not a readable CIFAR python batch") as info:
        load("cifar10", data_dir=folder)
    assert str(path) in str(info.value)


def test_cifar_garbage_and_non_dict_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
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
    write_cifar10(folder)
    path = folder / "data_batch_4"
    with open(path, "wb") as handle:
        pickle.dump({b"data": np.zeros((4, width), np.uint8), b"labels": [0, 1, 2, 3]}, handle)
    with pytest.raises(RethinkgenError, match=r"data must be uint8 \[N, 3072\]") as info:
        load("cifar10", data_dir=folder)
    assert str(path) in str(info.value) and str(width) in str(info.value)


def test_cifar_wrong_data_dtype(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    path = folder / "test_batch"
    with open(path, "wb") as handle:
        pickle.dump({b"data": np.zeros((5, 3072), np.float32), b"labels": [0] * 5}, handle)
    with pytest.raises(RethinkgenError, match="float32") as info:
        load("cifar10", data_dir=folder)
    assert str(path) in str(info.value)


def test_cifar_label_count_mismatch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    path = folder / "data_batch_5"
    write_batch(path, cifar_images(4, 0), [1, 2, 3])
    with pytest.raises(RethinkgenError, match="4 images but 3 labels") as info:
        load("cifar10", data_dir=folder)
    assert str(path) in str(info.value)


def test_cifar_missing_labels_key(tmp_path):
    folder = tmp_path / "cifar-100-python"
    _write_cifar100(folder)
    # a CIFAR-100 batch written with CIFAR-10's key: no fine labels
    write_batch(folder / "train", cifar_images(7, 1), [0] * 7, labels_key=b"labels")
    with pytest.raises(RethinkgenError, match="fine_labels") as info:
        load("cifar100", data_dir=folder)
    assert str(folder / "train") in str(info.value)


def test_cifar_meta_missing_key(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"fine_label_names": []}, handle)
    with pytest.raises(RethinkgenError, match="label_names") as info:
        load("cifar10", data_dir=folder)
    assert "batches.meta" in str(info.value)


def test_cifar_label_outside_class_range(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    write_batch(folder / "test_batch", cifar_images(5, 0), [0, 1, 2, 3, 10])
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
    expected = write_cifar10(staging / "cifar-10-batches-py")
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


