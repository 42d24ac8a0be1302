"""A Citrix Provisioning store folder: which vDisks and versions it holds, and which are in use.

File naming follows Citrix's documentation of the VHDX chain (Citrix
Provisioning, "VHDX chain of differencing disks"):

| | image | properties | lock |
|---|---|---|---|
| base | ``NAME.vhdx`` | ``NAME.pvp`` | ``NAME.lok`` |
| version N | ``NAME.N.vhdx`` (merged base) or ``NAME.N.avhdx`` (differencing) | ``NAME.N.pvp`` | ``NAME.N.lok`` |

(``.vhd``/``.avhd`` for VHD vDisks.) A ``.lok`` file is PVS's lock: the vDisk
(version) is in use or was not released. On a share, an image file another
client holds open (a PVS server streaming it) is in use too; SMB tells us by
refusing an exclusive open.

The store is either an SMB share folder (a Windows File Share connector, as
Citrix publishes) or a local directory (the embedded default).
"""

from __future__ import annotations

import posixpath
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from imageport.disks.io import FileSystem
from imageport.disks.local_files import LOCAL
from imageport.errors import InputError
from imageport.storage.smb import SmbShare
from imageport.storage.smb_files import SmbFileSystem

IMAGE_EXTENSIONS = (".vhdx", ".avhdx", ".vhd", ".avhd")
LOCK_EXTENSION = ".lok"


@dataclass(frozen=True)
class StoreFile:
    """One image file of a vDisk: its version (0 = the base) and file name."""

    version: int
    name: str

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0]

    @property
    def lock(self) -> str:
        return self.stem + LOCK_EXTENSION


class StoreFolder(ABC):
    """A PVS store folder, wherever it lives."""

    display: str
    fs: FileSystem  # opens images and sinks by ``path(name)``

    @abstractmethod
    def path(self, name: str) -> str: ...

    @abstractmethod
    def names(self) -> list[str]:
        """File names in the folder (the folder must exist)."""

    @abstractmethod
    def write_text(self, name: str, text: str) -> None: ...

    @abstractmethod
    def open_elsewhere(self, name: str) -> bool:
        """Whether another client holds the file open (False where the store cannot tell)."""

    def close(self) -> None:
        return None

    # --- what PVS sees -------------------------------------------------------------

    def vdisk_files(self, vdisk: str, names: list[str] | None = None) -> list[StoreFile]:
        """The image files of ``vdisk`` in version order (case-insensitive, as Windows is)."""
        pattern = re.compile(rf"^{re.escape(vdisk)}(?:\.(\d+))?(\.[A-Za-z]+)$", re.IGNORECASE)
        found = []
        for name in self.names() if names is None else names:
            match = pattern.match(name)
            if match and match.group(2).lower() in IMAGE_EXTENSIONS:
                found.append(StoreFile(int(match.group(1) or 0), name))
        return sorted(found, key=lambda f: (f.version, f.name))

    def locks(self, vdisk: str, names: list[str] | None = None) -> list[str]:
        """PVS lock files of any version of ``vdisk``."""
        pattern = re.compile(rf"^{re.escape(vdisk)}(?:\.\d+)?{re.escape(LOCK_EXTENSION)}$", re.IGNORECASE)
        return sorted(n for n in (self.names() if names is None else names) if pattern.match(n))

    def in_use(self, vdisk: str, names: list[str] | None = None) -> list[str]:
        """Why ``vdisk`` must not be touched: its lock files, and image files open elsewhere."""
        names = self.names() if names is None else names  # one listing for both questions
        reasons = [f"PVS lock file {lock} is present" for lock in self.locks(vdisk, names)]
        reasons += [
            f"{f.name} is open on another client" for f in self.vdisk_files(vdisk, names) if self.open_elsewhere(f.name)
        ]
        return reasons


class SmbStoreFolder(StoreFolder):
    def __init__(self, share: SmbShare, folder: str = "") -> None:
        self.share = share
        self.folder = folder.strip("/")
        self.fs = SmbFileSystem(share)  # connects
        self.display = f"{share.display}/{self.folder}".rstrip("/")
        if self.folder and not share.exists(self.folder):
            raise InputError(f"{self.display}: no such folder on the share")

    def path(self, name: str) -> str:
        return posixpath.join(self.folder, name) if self.folder else name

    def names(self) -> list[str]:
        return self.share.listdir(self.folder)

    def write_text(self, name: str, text: str) -> None:
        self.share.write_bytes(self.path(name), text.encode())

    def open_elsewhere(self, name: str) -> bool:
        return self.share.open_elsewhere(self.path(name))

    def close(self) -> None:
        self.fs.close()


class LocalStoreFolder(StoreFolder):
    """A store folder on a local disk. Open handles cannot be seen here, only lock files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fs = LOCAL
        self.display = str(directory)
        if not directory.is_dir():
            raise InputError(f"{directory}: no such store folder")

    def path(self, name: str) -> str:
        """The file ``name`` in the folder; refused when it is a link that leads out of the folder."""
        candidate = self.directory / name
        if candidate.resolve().parent != self.directory.resolve():
            raise InputError(f"{self.display}: {name!r} leads out of the store folder (a link or a path)")
        return str(candidate)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.directory.iterdir())

    def write_text(self, name: str, text: str) -> None:
        Path(self.path(name)).write_text(text)

    def open_elsewhere(self, name: str) -> bool:
        return False
