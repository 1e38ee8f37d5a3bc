"""Checksum-verified, atomic downloads of dataset files."""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from ..atomic_file import atomic_path


def file_md5(path) -> str:
    """md5 hex digest of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, destination, md5: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``destination``, verify its md5, and move it into place atomically.

    The file is written to a temporary file beside ``destination`` and renamed
    only once its checksum matches, so an interrupted or corrupt download never
    leaves a half-written file under the final name.

    Raises
    ------
    OSError
        When the download fails or the checksum does not match.
    """
    destination = Path(destination)
    with atomic_path(destination) as tmp:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
        got = file_md5(tmp)
        if got != md5:
            raise OSError(f"checksum mismatch for {url}: md5 {got}, expected {md5}")
    return destination
