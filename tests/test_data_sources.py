"""The source registry: loading by name, options, and the status of each source's files."""

from __future__ import annotations

import pytest

from helpers import idx_arrays, write_cifar10, write_idx_dir
from rethinkgen.data import SOURCES, load, source_status
from rethinkgen.errors import RethinkgenError

pytestmark = pytest.mark.usefixtures("isolated_cache")


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
    write_cifar10(tmp_path / "cifar-10-batches-py")
    by_name = {row["name"]: row for row in source_status(data_dir=tmp_path)}
    assert by_name["cifar10"]["found"] is True
    assert by_name["cifar10"]["where"] == str(tmp_path / "cifar-10-batches-py")
    assert by_name["cifar10"]["shape"] == "20 train / 5 test, images 3x32x32, 10 classes"
    assert by_name["cifar100"]["found"] is False


def test_source_status_reports_unreadable_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RETHINKGEN_DATA", str(tmp_path / "cache"))
    paths = write_idx_dir(tmp_path, idx_arrays(), gz=False)
    paths["x_train"].write_bytes(paths["x_train"].read_bytes()[:-3])
    by_name = {row["name"]: row for row in source_status(data_dir=tmp_path)}
    row = by_name["mnist"]
    assert row["found"] is False
    assert row["where"] == str(tmp_path)
    assert row["shape"].startswith("unreadable:") and "truncated" in row["shape"]
