"""A local directory as a platform and a share: the embedded default.

Paths are always resolved inside the root; anything that would escape it
(``..``, absolute paths, symlinks pointing out) is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from imageport.errors import InputError, StorageAccessDenied, StorageNotFound
from imageport.storage.probe import probe_directory


class LocalDirectoryConfig(BaseModel):
    root: str = Field(description="Directory that holds images (created if missing).")
    ce_max_concurrent: int = Field(
        default=2, ge=1, le=64, description="Compositing engines allowed at once here (a Prefect concurrency limit)."
    )

    def build(self) -> LocalDirectory:
        return LocalDirectory(self)


class LocalDirectory:
    def __init__(self, config: LocalDirectoryConfig) -> None:
        self.config = config
        self.root = Path(config.root).expanduser().absolute()

    @property
    def display(self) -> str:
        return f"local://{self.root}"

    def path(self, relative: str) -> Path:
        candidate = (self.root / relative).resolve()
        if candidate != self.root.resolve() and self.root.resolve() not in candidate.parents:
            raise InputError(f"{relative!r} resolves outside the local connector root {self.root}")
        return candidate

    def check(self) -> list[str]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except PermissionError:
            raise StorageAccessDenied(f"{self.display}: cannot create the directory") from None
        except FileExistsError:
            raise StorageNotFound(f"{self.display}: exists but is not a directory") from None
        if not self.root.is_dir():
            raise StorageNotFound(f"{self.display}: not a directory")
        proven = probe_directory(self.root, self.display)
        free = os.statvfs(self.root)
        return [proven, f"{free.f_bavail * free.f_frsize / 2**30:.1f} GiB free"]
