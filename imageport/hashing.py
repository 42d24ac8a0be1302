"""Digests of whole local files (installers staged into an image, the agent bundle)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 4 << 20


def file_sha256(path: Path | str) -> str:
    """The SHA-256 of the file at ``path``, read in 4 MiB chunks (never whole into memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
