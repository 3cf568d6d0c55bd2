"""Fetching the canonical files of a dataset into a cache, verified by checksum.

Only used when the user asks for it (``--download``); nothing else in rethinkgen touches the network.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from pathlib import Path
from typing import BinaryIO

from rethinkgen.errors import RethinkgenError
from rethinkgen.store import atomic_write


def cache_root() -> Path:
    """Where downloads go: ``$RETHINKGEN_DATA`` if set, else ``~/.cache/rethinkgen``."""
    return Path(os.environ.get("RETHINKGEN_DATA") or Path.home() / ".cache" / "rethinkgen")


def check_folder(name: str, where: Path) -> None:
    """Refuse a data directory ``where`` of dataset ``name`` that does not exist or is not a folder."""
    if Path(where).is_dir():
        return
    if Path(where).exists():
        raise RethinkgenError(f"{name}: data directory {where} is a file, not a folder; give the folder that holds "
                              "the dataset's files")
    raise RethinkgenError(f"{name}: data directory {where} does not exist")


def md5sum(path: Path) -> str:
    """The MD5 checksum of the file at ``path``, in hexadecimal (read in 1 MiB chunks)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, destination: Path, md5: str) -> Path:
    """Download ``url`` to ``destination`` unless a file with the right checksum is already there.

    The file is written by ``store.atomic_write`` (under a temporary name, renamed only once its checksum
    matches), so an interrupted or corrupted download never leaves a file that looks complete.

    Args:
        url: where the file is.
        destination: the file to write (its folder is created).
        md5: the file's expected MD5 checksum, in hexadecimal.

    Returns:
        ``destination``.
    """
    destination = Path(destination)
    if destination.exists() and md5sum(destination) == md5:
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)

    def download(out: BinaryIO) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    digest.update(chunk)
        except (OSError, http.client.HTTPException) as error:
            raise RethinkgenError(f"could not download {url}: {error}") from None
        if digest.hexdigest() != md5:
            raise RethinkgenError(f"download of {url} has MD5 {digest.hexdigest()}, expected {md5}; nothing was kept")

    atomic_write(destination, download)
    return destination
