"""The agent's side of installer delivery: each installer the job names, fetched and checked before use.

A job names each installer with where this CE finds it (``JobInstaller.fetch``): a local path (the local
CE), an http(s) URL (an Azure CE: a blob's read-only SAS), or ``lun:N`` (a vSphere CE, which has no
network: a disk of its own at SCSI unit N holding the installer from offset 0, zero-padded to a sector).
A URL or a disk is copied into the job's work folder in 1 MiB pieces (never whole into memory); either
way size and sha256 must be the ones the orchestrator checked, or nothing is staged. Messages name the
installer, never the URL (it holds a SAS).
The agent runs on the CE's python3 (3.9+): urllib only.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from imageport.engine.job import LUN_FETCH, AgentDisk, JobInstaller
from imageport.errors import EngineError
from imageport.guest.installers import Staging

PIECE = 1 << 20
FETCH_TIMEOUT_S = 300


def _download(url: str, to: Path, name: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response, open(to, "wb") as out:
            while piece := response.read(PIECE):
                out.write(piece)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "code", None) or getattr(exc, "reason", None) or type(exc).__name__
        raise EngineError(f"installer {name}: the CE could not fetch it ({reason})") from None


def _from_disk(device: str, size: int, to: Path, name: str) -> None:
    """The installer's ``size`` bytes from the start of the disk it came on (the rest is sector padding)."""
    try:
        with open(device, "rb") as disk, open(to, "wb") as out:
            left = size
            while left and (piece := disk.read(min(PIECE, left))):
                out.write(piece)
                left -= len(piece)
    except OSError as exc:
        raise EngineError(f"installer {name}: the CE could not read its disk {device} ({exc.strerror})") from None


def _digest(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while piece := f.read(PIECE):
            digest.update(piece)
            size += len(piece)
    return size, digest.hexdigest()


def fetch_installers(installers: list[JobInstaller], work: Path, disk: AgentDisk) -> Staging:
    """Every installer at a local path of this CE, size and sha256 checked (``disk``: the job's, whose device
    root a ``lun:N`` installer disk shares)."""
    files: dict[str, str] = {}
    for item in installers:
        staged = item.installer
        local = work / staged.name
        if item.fetch.startswith(("http://", "https://")):
            work.mkdir(parents=True, exist_ok=True)
            _download(item.fetch, local, staged.name)
        elif item.fetch.startswith(LUN_FETCH):
            work.mkdir(parents=True, exist_ok=True)
            device = AgentDisk(lun=int(item.fetch.removeprefix(LUN_FETCH)), device_root=disk.device_root).resolve()
            _from_disk(device, staged.size, local, staged.name)
        else:
            local = Path(item.fetch)
            if not os.path.isfile(local):
                raise EngineError(f"installer {staged.name}: not found in the CE at {local}")
        size, sha256 = _digest(local)
        if (size, sha256) != (staged.size, staged.sha256):
            raise EngineError(
                f"installer {staged.name}: the CE received {size} bytes sha256 {sha256[:16]}…, "
                f"not the {staged.size} bytes sha256 {staged.sha256[:16]}… that were checked"
            )
        files[staged.name] = str(local)
    return Staging([i.installer for i in installers], files)
