"""Downloads: the cache folder, checksums, and fetching without leaving a bad file behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rethinkgen.data.download import cache_root, fetch, md5sum
from rethinkgen.errors import RethinkgenError

pytestmark = pytest.mark.usefixtures("isolated_cache")


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
    assert not list(destination.parent.glob("*.tmp"))


def test_fetch_wrong_md5_keeps_nothing(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"payload")
    destination = tmp_path / "out" / "out.bin"
    with pytest.raises(RethinkgenError, match="MD5") as info:
        fetch(source.as_uri(), destination, "0" * 32)
    assert "0" * 32 in str(info.value) and hashlib.md5(b"payload").hexdigest() in str(info.value)
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == []  # no leftover temporary file


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


