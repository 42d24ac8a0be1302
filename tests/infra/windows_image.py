"""Test access to the sample Windows-like disks (``imageport.guest.sample_image``) and an independent reader."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from imageport.guest.sample_image import KINDS, build_disks, empty_hive, software_hive, system_hive

__all__ = [
    "KINDS",
    "build_disks",
    "empty_hive",
    "ntfs_span",
    "registry_dump",
    "software_hive",
    "staged_file",
    "system_hive",
    "windows_volume",
]


def registry_dump(image: Path, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Every key and value of SYSTEM and SOFTWARE of a raw image, read by sfdisk, ntfs-3g and regipy.

    None of them is the code under test (that is libguestfs + hivex), and none launches an appliance:
    the Windows partition is cut out of the image and its hives read with ``ntfscat``, in well under a second.
    """
    from regipy.registry import RegistryHive

    out = tmp_path / "hives"
    out.mkdir(parents=True, exist_ok=True)
    volume = windows_volume(image, out / "volume.img")
    dump: dict[str, dict[str, Any]] = {}
    try:
        for name in ("SYSTEM", "SOFTWARE"):
            with open(out / name, "wb") as hive:
                subprocess.run(["ntfscat", str(volume), f"/Windows/System32/config/{name}"], stdout=hive, check=True)
            for entry in RegistryHive(str(out / name)).recurse_subkeys(as_json=False):
                dump[f"{name}{entry.path}"] = {v.name: v.value for v in entry.values or []}
    finally:
        volume.unlink()
    return dump


def staged_file(image: Path, name: str, work: Path) -> bytes:
    """The installer ``name`` a prepare staged into a raw image, read with ntfs-3g's ``ntfscat``."""
    work.mkdir(parents=True, exist_ok=True)
    volume = windows_volume(image, work / "volume.img")
    try:
        return subprocess.run(["ntfscat", str(volume), f"/ProgramData/imageport/installers/{name}"],
                              capture_output=True, check=True).stdout  # fmt: skip
    finally:
        volume.unlink()


def windows_volume(image: Path, to: Path) -> Path:
    """The image's first NTFS partition, copied to ``to`` (ntfs-3g reads a volume, not a partitioned disk)."""
    start, size = ntfs_span(image)
    with open(image, "rb") as disk, open(to, "wb") as volume:
        disk.seek(start)
        shutil.copyfileobj(_Window(disk, size), volume, 4 << 20)
    return to


def ntfs_span(image: Path) -> tuple[int, int]:
    """Byte offset and size of the image's first NTFS partition (by its boot sector's OEM id)."""
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, check=True).stdout)
    sector = int(table["partitiontable"].get("sectorsize", 512))
    with open(image, "rb") as disk:
        for part in table["partitiontable"]["partitions"]:
            start, size = int(part["start"]) * sector, int(part["size"]) * sector
            disk.seek(start + 3)
            if disk.read(8) == b"NTFS    ":
                return start, size
    raise AssertionError(f"{image}: no NTFS partition")


class _Window:
    """``size`` bytes of an open file from its current position, as a readable object."""

    def __init__(self, file: Any, size: int) -> None:
        self.file, self.left = file, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.file.read(n)
        self.left -= len(data)
        return data
