"""Local files: ``RandomAccessFile`` (read with ``pread``), ``LocalFileSink`` (a staged file, fsync
before rename), ``LocalFileSystem`` and its one instance ``LOCAL``. Every ``OSError`` is
translated by ``imageport.disks.os_errors``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imageport.disks.extents import Extent
from imageport.disks.io import ByteSource, FileSystem, Sink, refuse_empty
from imageport.disks.local_lock import LocalOutputStore, file_kind
from imageport.disks.os_errors import os_error, translate_os_errors
from imageport.disks.staged import StagedSink
from imageport.errors import InputError

if TYPE_CHECKING:
    from imageport.disks.ownership import OutputStore


def _not_an_image(mode: int) -> str | None:
    """Why a file of this type is never read as an image (a FIFO would hang, a device is no file)."""
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return None


class RandomAccessFile(ByteSource):
    """A local read-only file read with ``pread``: thread-safe, no shared seek position;
    the file system's SEEK_DATA/SEEK_HOLE is its allocation map."""

    holes_are_cheap = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below)
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise InputError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{self.path}: is a directory, not a disk image") from None
        except PermissionError:
            raise InputError(f"{self.path}: permission denied") from None
        except OSError as exc:
            raise os_error(self.path, "open", exc) from None
        st = os.fstat(self.fd)
        refusal = _not_an_image(st.st_mode)
        if refusal:
            os.close(self.fd)
            raise InputError(f"{self.path}: is a {refusal}, not a disk image")
        # A block device (a disk attached to a compositing engine) reports size 0 in stat.
        self.size = os.lseek(self.fd, 0, os.SEEK_END) if stat.S_ISBLK(st.st_mode) else st.st_size
        refuse_empty(self.path, self.size)

    def preadv(self, view: memoryview, offset: int) -> int:
        try:
            return os.preadv(self.fd, [view], offset)
        except OSError as exc:
            raise self._error(offset, len(view), exc) from None

    def pread(self, offset: int, length: int) -> bytes:
        try:
            return os.pread(self.fd, length, offset)
        except OSError as exc:
            raise self._error(offset, length, exc) from None

    def _error(self, offset: int, length: int, exc: OSError) -> Exception:
        return os_error(self.path, f"read of {length} bytes at offset {offset}", exc)

    def stamp(self) -> dict[str, int | str]:
        st = os.fstat(self.fd)
        return {"size": self.size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
                "ino": st.st_ino, "dev": st.st_dev}  # fmt: skip

    def data_extents(self, start: int, end: int) -> Iterator[Extent]:
        pos = start
        while pos < end:
            try:
                data = os.lseek(self.fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after pos
                    return
                if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # no sparse support: all data
                    yield Extent(pos, end - pos)
                    return
                raise
            if data >= end:
                return
            hole = min(os.lseek(self.fd, data, os.SEEK_HOLE), end)
            yield Extent(data, hole - data)
            pos = hole

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LocalFileSink(StagedSink):
    """A staged file in a local directory (fsync before rename); every OSError is translated."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        overwrite: bool = False,
        resume: dict[str, Any] | None = None,
        wait_lock: bool = False,
    ):
        self.fd = -1
        self.store = LocalOutputStore()
        super().__init__(os.fspath(path), os.fspath(path), overwrite, resume, wait_lock)

    def _exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def _kind(self, path: str) -> str | None:

        return file_kind(path)

    def _check_parent(self) -> None:
        parent = Path(self.final).parent
        if not parent.is_dir():
            raise InputError(f"{parent}: no such directory")

    def _open(self, path: str, how: str) -> None:
        flags = {"new": os.O_CREAT | os.O_EXCL, "truncate": os.O_CREAT | os.O_TRUNC, "existing": 0}[how]
        with translate_os_errors(path, "create" if how == "new" else "open for writing"):
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | flags, 0o644)

    def _pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        with translate_os_errors(self.temp, f"write at offset {offset}"):
            while len(view):
                written = os.pwrite(self.fd, view, offset)
                view = view[written:]
                offset += written

    def _truncate(self, size: int) -> None:
        with translate_os_errors(self.temp, f"resize to {size} bytes"):
            os.ftruncate(self.fd, size)

    def _flush(self) -> None:
        if self.fd >= 0:
            with translate_os_errors(self.temp, "flush (fsync)"):
                os.fsync(self.fd)

    def _close(self, abandon: bool = False) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            with translate_os_errors(self.temp, "close"):
                os.close(fd)

    def _replace(self, temp: str, final: str, overwrite: bool) -> None:
        if not overwrite:
            self.store.rename(temp, final)
            return
        with translate_os_errors(final, f"rename {temp} over it"):
            os.replace(temp, final)

    def _remove(self, path: str) -> None:
        self.store.remove(path)

    def _read_text(self, path: str) -> str | None:
        try:
            return Path(path).read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise os_error(path, "read", exc) from None

    def _write_text(self, path: str, text: str) -> None:
        with translate_os_errors(path, "write"):
            Path(path).write_text(text)


class LocalFileSystem(FileSystem):
    def open(self, path: str) -> ByteSource:
        return RandomAccessFile(path)

    def isfile(self, path: str) -> bool:
        return os.path.isfile(path)

    def open_sink(
        self, path: str, overwrite: bool = False, resume: dict[str, Any] | None = None, wait_lock: bool = False
    ) -> Sink:
        return LocalFileSink(path, overwrite, resume, wait_lock)

    def output_store(self) -> OutputStore:
        return LocalOutputStore()

    def realpath(self, path: str) -> str:
        return os.path.realpath(path)

    def dirname(self, path: str) -> str:
        return os.path.dirname(path)

    def join(self, directory: str, relative: str) -> str:
        return os.path.join(directory, relative)


LOCAL = LocalFileSystem()
