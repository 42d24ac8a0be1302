"""What every disk format module provides: readers, writers, sinks and extents.

A *reader* presents a virtual disk: ``virtual_size`` bytes, readable at any
offset (unallocated ranges read as zeros, or as the parent's data for a
differencing disk), plus ``extents()``, the allocated ranges taken from the
format's own allocation map, ascending and coalesced. Copies move only those.

A *writer* builds a container from extents: ``write(offset, data)`` with
ascending, non-overlapping, sector-aligned offsets; what is never written
stays a hole (or an unallocated block). ``finish()`` writes the metadata and
makes the file appear under its final name; until then it lives under a
temporary name, so nothing half-written ever looks complete.

Untrusted input: readers validate every structure before use and raise
``FormatError`` naming file, structure and offset; sizes read from a file are
bounded (``MAX_VIRTUAL_SIZE``) before anything is allocated from them.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import sys
from abc import ABC, abstractmethod
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from heapq import merge
from typing import TYPE_CHECKING, Any

from imageport.compat import SLOTS
from imageport.errors import FormatError, InputError
from imageport.models import DiskFormat

if TYPE_CHECKING:
    from typing import Self

    from imageport.disks.ownership import OutputStore

SECTOR = 512
KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB
# VHDX's limit; every format we read stays at or under it.
MAX_VIRTUAL_SIZE = 64 * TiB
# Longest parent chain we follow (Hyper-V and PVS stop far earlier).
MAX_CHAIN_DEPTH = 32
ZERO_4MiB = bytes(4 * MiB)


@dataclass(frozen=True, **SLOTS)
class Extent:
    """A half-open byte range [offset, offset + length) of the virtual disk."""

    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


def coalesce(extents: Iterable[Extent]) -> Iterator[Extent]:
    """Merge touching or overlapping ascending extents."""
    current: Extent | None = None
    for ext in extents:
        if ext.length <= 0:
            continue
        if current is not None and ext.offset <= current.end:
            current = Extent(current.offset, max(current.end, ext.end) - current.offset)
            continue
        if current is not None:
            yield current
        current = ext
    if current is not None:
        yield current


def block_runs(offset: int, length: int, block_size: int) -> Iterator[tuple[int, int, int, int]]:
    """Split [offset, offset + length) at ``block_size`` boundaries.

    Yields ``(block, inner, pos, n)``: the block index, the offset inside it, the
    position in the caller's buffer and the run length. Every format that maps a
    virtual range onto blocks or grains walks it this way.
    """
    pos = 0
    while pos < length:
        block, inner = divmod(offset + pos, block_size)
        n = min(block_size - inner, length - pos)
        yield block, inner, pos, n
        pos += n


def unpack_array(raw: bytes, typecode: str, byteorder: str) -> array[int]:
    """Integers stored in ``byteorder`` ('big'/'little') as a compact array: a BAT or grain
    directory costs 4 or 8 bytes an entry, not a Python int each."""
    values = array(typecode)
    values.frombytes(raw)
    if byteorder != sys.byteorder:
        values.byteswap()
    return values


def pack_array(values: array[int], byteorder: str) -> bytes:
    """The inverse of ``unpack_array``; ``values`` is left untouched."""
    if byteorder == sys.byteorder:
        return values.tobytes()
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped.tobytes()


def is_zero(data: bytes | bytearray | memoryview) -> bool:
    """Fast all-zero test: a memcmp against preallocated zeros (bytes vs bytes, never memoryview)."""
    n = len(data)
    if n <= len(ZERO_4MiB):
        chunk = data if isinstance(data, bytes) else bytes(data)
        return chunk == ZERO_4MiB[:n]
    return all(is_zero(data[i : i + len(ZERO_4MiB)]) for i in range(0, n, len(ZERO_4MiB)))


def check_virtual_size(path: str, structure: str, offset: int, size: int, multiple: int = SECTOR) -> int:
    if size <= 0 or size > MAX_VIRTUAL_SIZE:
        raise FormatError(path, structure, offset, f"virtual size {size} is outside 1 byte .. 64 TiB")
    if size % multiple:
        raise FormatError(path, structure, offset, f"virtual size {size} is not a multiple of {multiple}")
    return size


class ByteSource(ABC):
    """Random-access bytes of one file, wherever it lives (local disk, SMB share...)."""

    path: str
    size: int

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


def refuse_empty(path: str, size: int) -> None:
    """An empty file holds no disk, in any format: say so before any format is tried."""
    if size == 0:
        raise FormatError(path, "file", 0, "empty (0 bytes): not a disk image")


class RandomAccessFile(ByteSource):
    """A local read-only file read with ``pread``: thread-safe, no shared seek position;
    the file system's SEEK_DATA/SEEK_HOLE is its allocation map."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from imageport.disks.os_errors import os_error  # one OSError mapping for local files

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
        from imageport.disks.os_errors import os_error

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


class LocalFileSystem(FileSystem):
    def open(self, path: str) -> ByteSource:
        return RandomAccessFile(path)

    def isfile(self, path: str) -> bool:
        return os.path.isfile(path)

    def open_sink(
        self, path: str, overwrite: bool = False, resume: dict[str, Any] | None = None, wait_lock: bool = False
    ) -> Sink:
        from imageport.disks.staged import LocalFileSink  # staged builds on this module

        return LocalFileSink(path, overwrite, resume, wait_lock)

    def output_store(self) -> OutputStore:
        from imageport.disks.local_lock import LocalOutputStore

        return LocalOutputStore()

    def realpath(self, path: str) -> str:
        return os.path.realpath(path)

    def dirname(self, path: str) -> str:
        return os.path.dirname(path)

    def join(self, directory: str, relative: str) -> str:
        return os.path.join(directory, relative)


LOCAL = LocalFileSystem()


class DiskReader(ABC):
    """A virtual disk readable at any offset, with its allocation map."""

    format: DiskFormat
    subformat: str = ""

    def __init__(self, path: str) -> None:
        self.path = path
        self.virtual_size = 0
        self.parent: DiskReader | None = None

    @abstractmethod
    def extents(self) -> Iterator[Extent]:
        """Allocated ranges, ascending and coalesced (for differencing disks: union with the parent's)."""

    @abstractmethod
    def _read_into(self, offset: int, view: memoryview) -> None:
        """Fill ``view`` with the virtual bytes at ``offset`` (bounds already checked)."""

    def readinto(self, offset: int, buffer: bytearray | memoryview) -> memoryview:
        view = memoryview(buffer)
        if offset < 0 or offset + len(view) > self.virtual_size:
            raise InputError(
                f"{self.path}: read of {len(view)} bytes at {offset} is outside the disk ({self.virtual_size} bytes)"
            )
        if len(view):
            self._read_into(offset, view)
        return view

    def read(self, offset: int, length: int) -> bytes:
        buf = bytearray(length)
        self.readinto(offset, buf)
        return bytes(buf)

    def allocated_bytes(self) -> int:
        return sum(e.length for e in self.extents())

    def details(self) -> dict[str, Any]:
        """Format-specific facts for ``disk info`` (block size, creator, ...)."""
        return {}

    # --- what the source fingerprint (``disks.fingerprint``) reads; this link only, not the parent

    def stamps(self) -> list[dict[str, int | str]]:
        """The store's version stamp of every file of this link (``ByteSource.stamp``)."""
        return []

    def change_markers(self) -> dict[str, str]:
        """The container's own change markers (VHDX DataWriteGuid, VHD footer stamp, VMDK CID...)."""
        return {}

    def metadata(self) -> Iterator[bytes]:
        """The container's metadata as parsed (headers, BAT, grain directory): already in memory, so
        digesting it costs no read. Raw images have none."""
        return iter(())

    def chain(self) -> list[DiskReader]:
        links: list[DiskReader] = []
        node: DiskReader | None = self
        while node is not None:
            links.append(node)
            node = node.parent
        return links

    def close(self) -> None:
        if self.parent is not None:
            self.parent.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileReader(DiskReader):
    """A reader backed by one file, opened through a file system (local by default)."""

    def __init__(self, path: str, fs: FileSystem = LOCAL) -> None:
        super().__init__(path)
        self.fs = fs
        self.file = fs.open(path)

    def stamps(self) -> list[dict[str, int | str]]:
        return [self.file.stamp()]

    def close(self) -> None:
        self.file.close()
        super().close()


class BlockMappedReader(FileReader):
    """Formats whose allocation map is a table of fixed-size blocks (VHD BAT, VHDX BAT).

    Subclasses give ``block_size``, ``own_extents()`` and ``_read_block``; this
    class merges a differencing disk's extents with its parent's and walks a
    read block by block.
    """

    block_size: int

    @abstractmethod
    def own_extents(self) -> Iterator[Extent]:
        """Allocated ranges of this file alone (not its parent's)."""

    @abstractmethod
    def _read_block(self, block: int, inner: int, voff: int, part: memoryview) -> None:
        """Fill ``part``: the bytes at ``inner`` within ``block`` (virtual offset ``voff``)."""

    def extents(self) -> Iterator[Extent]:
        if self.parent is None:
            return self.own_extents()
        return coalesce(merge(self.own_extents(), self.parent.extents(), key=lambda e: e.offset))

    def _read_into(self, offset: int, view: memoryview) -> None:
        for block, inner, pos, n in block_runs(offset, len(view), self.block_size):
            self._read_block(block, inner, offset + pos, view[pos : pos + n])

    def _read_below(self, voff: int, part: memoryview) -> None:
        """Unallocated here: the parent's bytes, or zeros."""
        if self.parent is None:
            part[:] = bytes(len(part))
        else:
            self.parent.readinto(voff, part)


# --- sinks: where writers put bytes -------------------------------------------


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


@dataclass
class WriteStats:
    bytes_written: int = 0
    extents_written: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class DiskWriter(ABC):
    """Builds one container from ascending extents; see the module docstring."""

    format: DiskFormat
    # Writers whose blocks are allocated in sector units need sector-aligned writes.
    alignment: int = SECTOR

    def __init__(self, sink: Sink, virtual_size: int) -> None:
        if virtual_size <= 0 or virtual_size > MAX_VIRTUAL_SIZE:
            raise InputError(f"{sink.name}: virtual size {virtual_size} is outside 1 byte .. 64 TiB")
        self.sink = sink
        self.virtual_size = virtual_size
        self.stats = WriteStats()
        self._last_end = 0
        self._done = False

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        n = len(data)
        if offset < self._last_end or offset + n > self.virtual_size:
            raise InputError(
                f"{self.sink.name}: write at {offset}+{n} is out of order or past the end ({self.virtual_size})"
            )
        if offset % self.alignment or (n % self.alignment and offset + n != self.virtual_size):
            raise InputError(f"{self.sink.name}: write at {offset}+{n} is not {self.alignment}-byte aligned")
        if n:
            self._write(offset, memoryview(data))
            self._last_end = offset + n
            self.stats.bytes_written += n
            self.stats.extents_written += 1

    @abstractmethod
    def _write(self, offset: int, data: memoryview) -> None: ...

    @abstractmethod
    def _finish(self) -> None:
        """Write the container's metadata (BAT, footer, grain directory...)."""

    def finish(self) -> None:
        if self._done:
            return
        try:
            self.sink.end_of_data()
            self._finish()
            self.sink.commit()
        except BaseException:
            self.sink.abort()
            raise
        self._done = True

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self.sink.abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()
