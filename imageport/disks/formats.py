"""The contracts every disk format implements: readers and writers (sinks and extents: ``io``, ``extents``).

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
bounded (``MAX_VIRTUAL_SIZE``) before anything is allocated from them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from heapq import merge
from typing import TYPE_CHECKING, Any

from imageport.disks.extents import MAX_VIRTUAL_SIZE, SECTOR, Extent, block_runs, coalesce
from imageport.disks.io import FileSystem, Sink
from imageport.disks.local_files import LOCAL
from imageport.errors import InputError
from imageport.models import DiskFormat

if TYPE_CHECKING:
    from typing import Self


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

    Subclasses give ``block_size``, ``_stored_blocks()`` and ``_read_block``; this
    class turns the table into extents, merges a differencing disk's extents with
    its parent's and walks a read block by block.
    """

    block_size: int

    @abstractmethod
    def _stored_blocks(self) -> Iterator[tuple[int, int]]:
        """(block, file offset of its data) for every block this file stores, ascending by block."""

    def own_extents(self) -> Iterator[Extent]:
        """Allocated ranges of this file alone (not its parent's).

        Where the file's holes are cheap to ask for (a local file's SEEK_DATA), a stored
        block's holes are left out, as qemu-img does: a hole reads as zeros, and wherever
        a parent's data shows through instead, the parent's extents cover it. So a block
        allocated but never filled (qemu and Hyper-V extend the file, not write zeros)
        costs no read.
        """
        bs, size, file = self.block_size, self.virtual_size, self.file
        holes = file.holes_are_cheap

        def stored() -> Iterator[Extent]:
            for block, at in self._stored_blocks():
                length = min(bs, size - block * bs)
                if not holes:
                    yield Extent(block * bs, length)
                    continue
                for data in file.data_extents(at, at + length):
                    yield Extent(block * bs + data.offset - at, data.length)

        return coalesce(stored())

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
