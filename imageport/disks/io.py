"""The I/O protocols the disk engine reads and writes through, wherever the bytes live.

``ByteSource`` is one file's random-access bytes, ``FileSystem`` where images and their sibling
files are opened (local, an SMB share, a datastore), ``Sink`` where a writer puts a new file
(visible only on commit). The local-file implementation is ``imageport.disks.local_files``.
"""

from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from imageport.disks.extents import Extent
from imageport.errors import FormatError, InputError

if TYPE_CHECKING:
    from imageport.disks.formats import DiskReader
    from imageport.disks.ownership import OutputStore


class ByteSource(ABC):
    """Random-access bytes of one file, wherever it lives (local disk, SMB share...)."""

    path: str
    size: int
    # ``data_extents`` answers from a local call (SEEK_DATA), cheap enough to ask block by block;
    # a remote store's map costs a request, so readers ask it once or not at all.
    holes_are_cheap: bool = False

    @abstractmethod
    def preadv(self, view: memoryview, offset: int) -> int:
        """Fill ``view`` from ``offset``; returns the bytes read (fewer only at end of file)."""

    def pread(self, offset: int, length: int) -> bytes:
        buf = bytearray(length)
        got = self.preadv(memoryview(buf), offset)
        return bytes(buf[:got])

    def read_exact(self, offset: int, length: int, structure: str) -> bytes:
        """Read a structure that must be entirely inside the file."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FormatError(self.path, structure, offset, f"needs {length} bytes but the file has {self.size}")
        data = self.pread(offset, length)
        if len(data) != length:
            raise FormatError(self.path, structure, offset, "short read (file truncated while reading?)")
        return data

    def data_extents(self, start: int, end: int) -> Iterator[Extent]:
        """Ranges that may hold data; without an allocation map, all of it."""
        if end > start:
            yield Extent(start, end - start)

    def stamp(self) -> dict[str, int | str]:
        """What the store says about this file's current version: size, modification time and a
        file id where it has one (part of the source fingerprint, ``disks.fingerprint``)."""
        return {"size": self.size}

    def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        pass


def pieces(source: ByteSource, piece: int = 4 << 20) -> Iterator[bytes]:
    """Every byte of ``source``, front to back, in reads of ``piece`` bytes (a small file, copied whole)."""
    offset = 0
    while offset < source.size:
        data = source.pread(offset, min(piece, source.size - offset))
        if not data:
            raise FormatError(source.path, "file", offset, f"ended at {offset} of {source.size} bytes")
        yield data
        offset += len(data)


def copy_bytes(source: ByteSource, write: Callable[[bytes], object], piece: int = 4 << 20) -> int:
    """``pieces`` of ``source`` into ``write``; returns the count."""
    total = 0
    for data in pieces(source, piece):
        write(data)
        total += len(data)
    return total


def refuse_empty(path: str, size: int) -> None:
    """An empty file holds no disk, in any format: say so before any format is tried."""
    if size == 0:
        raise FormatError(path, "file", 0, "empty (0 bytes): not a disk image")


class FileSystem(ABC):
    """Where images and their sibling files (VMDK extents, parents) are opened from.

    Paths are ``/``-separated strings; each file system decides what they mean.
    """

    @abstractmethod
    def open(self, path: str) -> ByteSource: ...

    @abstractmethod
    def isfile(self, path: str) -> bool: ...

    @abstractmethod
    def open_sink(
        self, path: str, overwrite: bool = False, resume: dict[str, Any] | None = None, wait_lock: bool = False
    ) -> Sink:
        """Where a writer puts a new file; it appears under ``path`` only on commit.

        ``resume`` (what is being written: source, format, writer) makes the sink resumable:
        see ``imageport.disks.staged.StagedSink``. The output is locked for the sink's life;
        another run holding it: ``OutputBusy``, or wait for it with ``wait_lock``.
        """

    def output_store(self) -> OutputStore:
        """Locks, listings and leftovers here (``imageport clean``); stores without staged outputs refuse."""
        raise InputError(f"{type(self).__name__}: no staged outputs are written here, nothing to clean")

    def disk_reader(self, path: str, format: Any = None) -> DiskReader | None:
        """A file system whose files are already virtual disks (a stream shared by many writers,
        ``transfer.window``) hands out their reader here; ``open_disk`` asks first. None: detect from the bytes."""
        return None

    def realpath(self, path: str) -> str:
        """A canonical form, for loop detection in parent chains."""
        return path

    def reconnect(self) -> None:
        """After a dropped connection: log in again (files must be reopened). Local: nothing to do."""
        return None

    def dirname(self, path: str) -> str:
        return posixpath.dirname(path)

    def join(self, directory: str, relative: str) -> str:
        return posixpath.normpath(posixpath.join(directory, relative)) if directory else relative


class Sink(ABC):
    """A random-access byte destination that becomes visible only on ``commit``.

    Resumable sinks (``imageport.disks.staged``) also honour ``checkpoint()``
    (make what was written durable and record it) and ``end_of_data()`` (what
    follows is the container's metadata); for other sinks both are no-ops.
    """

    name: str
    resumed: bool = False  # true when an earlier identical run's durable writes are being reused

    def checkpoint(self) -> None:
        return None

    def end_of_data(self) -> None:
        return None

    @abstractmethod
    def pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None: ...

    @abstractmethod
    def truncate(self, size: int) -> None: ...

    @abstractmethod
    def commit(self) -> None:
        """Flush and make the result appear under its final name."""

    @abstractmethod
    def abort(self) -> None:
        """Remove everything written; the final name is never touched."""
