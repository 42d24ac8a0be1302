"""Proving a folder writable: write a probe file of a fresh name and delete it again.

Used by the connectors' ``check()`` (their base folder) and by the checks before a port (the staging
folder, a PVS store, a local target's folder). The probe is removed even when the write failed half way.
"""

from __future__ import annotations

import contextlib
import posixpath
import uuid
from pathlib import Path
from typing import Any

from imageport.errors import ImageportError, StorageAccessDenied, StorageNotFound

PROBE_PREFIX = ".imageport-probe-"
PROBE_TEXT = b"imageport write probe\n"


def probe_name() -> str:
    return f"{PROBE_PREFIX}{uuid.uuid4().hex}"


def probe_share(share: Any, folder: str = "") -> str:
    """Write and delete a probe in ``folder`` of ``share`` (an ``SmbShare``, connected); say what was proven."""
    where = f"{share.display}/{folder}".rstrip("/")
    if folder and not share.exists(folder):
        raise StorageNotFound(f"{where}: no such folder")
    probe = posixpath.join(folder, probe_name()) if folder else probe_name()
    try:
        share.write_bytes(probe, PROBE_TEXT)
    except ImageportError:
        with contextlib.suppress(ImageportError):
            share.remove(probe)
        raise
    share.remove(probe)
    return f"{where} is writable"


def probe_directory(directory: Path, display: str) -> str:
    """Write and delete a probe in the local ``directory``; say what was proven."""
    if not directory.is_dir():
        raise StorageNotFound(f"{display}: no such folder")
    probe = directory / probe_name()
    try:
        probe.write_bytes(PROBE_TEXT)
    except OSError as exc:
        raise StorageAccessDenied(f"{display}: not writable ({exc.strerror})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return f"{display} is writable"
