"""Convert between formats, and hash a virtual disk, in one streaming pass.

The pass walks the source's allocated extents in 4 MiB pieces through one
reused buffer; each piece is hashed (SHA-256, optionally MD5, over the
*logical* bytes, with the gaps hashed as zeros, so the digest is the same
whatever the container) and written only where it holds non-zero data, at
64 KiB granularity. Memory is bounded by the buffer and the writer's
allocation table, never by the disk size.

The same pass consumes a one-pass streamOptimized VMDK (``convert_stream``),
so an NFC download converts without spooling.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from imageport.disks.base import (
    SECTOR,
    DiskReader,
    DiskWriter,
    LocalFileSink,
    MiB,
    Sink,
    ZERO_4MiB,
    is_zero,
)
from imageport.disks.detect import open_disk
from imageport.disks.raw import RawWriter
from imageport.disks.vhd import VhdDynamicWriter, VhdFixedWriter
from imageport.disks.vhdx import VhdxWriter
from imageport.disks.vmdk import MonolithicSparseVmdkWriter, StreamGrains, StreamOptimizedVmdkWriter
from imageport.errors import InputError
from imageport.models import DiskFormat

PIECE = 4 * MiB
ZERO_GRANULE = 64 * 1024

Progress = Callable[[int, int], None]
"""progress(bytes_done, bytes_total) over the source's allocated bytes."""

WRITERS: dict[DiskFormat, Callable[..., DiskWriter]] = {
    DiskFormat.RAW: RawWriter,
    DiskFormat.VHD: VhdFixedWriter,
    DiskFormat.VHD_DYNAMIC: VhdDynamicWriter,
    DiskFormat.VHDX: VhdxWriter,
    DiskFormat.VMDK_STREAM: StreamOptimizedVmdkWriter,
    DiskFormat.VMDK_SPARSE: MonolithicSparseVmdkWriter,
}


def output_size(fmt: DiskFormat, source_size: int, requested: int | None = None) -> int:
    """The output's virtual size: the source's (or a larger requested one), rounded up as the format needs.

    Fixed VHD is rounded to a whole MiB, which is what Azure requires.
    """
    size = source_size
    if requested is not None:
        if requested < source_size:
            raise InputError(
                f"--size {requested} is smaller than the source ({source_size} bytes): only growing is safe"
            )
        size = requested
    unit = MiB if fmt is DiskFormat.VHD else SECTOR
    return -(-size // unit) * unit


def make_writer(fmt: DiskFormat, sink: Sink, size: int, **options: Any) -> DiskWriter:
    return WRITERS[fmt](sink, size, **options)


class DiskHasher:
    """SHA-256 (and optionally MD5) of a virtual disk's logical bytes, fed in order."""

    def __init__(self, md5: bool = False) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5() if md5 else None
        self.position = 0

    def update(self, data: bytes | memoryview) -> None:
        self.sha256.update(data)
        if self.md5 is not None:
            self.md5.update(data)
        self.position += len(data)

    def zeros_until(self, offset: int) -> None:
        zero = memoryview(ZERO_4MiB)
        while self.position < offset:
            self.update(zero[: min(len(zero), offset - self.position)])

    def result(self) -> tuple[str, str | None]:
        return self.sha256.hexdigest(), self.md5.hexdigest() if self.md5 else None


@dataclass
class ConvertResult:
    source: str
    source_format: DiskFormat
    output: str | None
    format: DiskFormat | None
    virtual_size: int
    source_allocated: int
    data_written: int
    sha256: str
    md5: str | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, DiskFormat) else v) for k, v in self.__dict__.items()}


def read_pieces(reader: DiskReader, buffer: bytearray) -> Iterator[tuple[int, memoryview]]:
    """(offset, data) for the allocated extents, in pieces aligned to the piece size."""
    size = len(buffer)
    for ext in reader.extents():
        start = ext.offset
        while start < ext.end:
            n = min(size - start % size, ext.end - start)
            yield start, reader.readinto(start, memoryview(buffer)[:n])
            start += n


def _nonzero_runs(offset: int, data: memoryview) -> Iterator[tuple[int, memoryview]]:
    """Sub-ranges of ``data`` that are not all zero, at 64 KiB granularity (aligned to the disk)."""
    run_start = -1
    pos = 0
    n = len(data)
    while pos < n:
        step = min(ZERO_GRANULE - (offset + pos) % ZERO_GRANULE, n - pos)
        zero = is_zero(data[pos : pos + step])
        if not zero and run_start < 0:
            run_start = pos
        elif zero and run_start >= 0:
            yield offset + run_start, data[run_start:pos]
            run_start = -1
        pos += step
    if run_start >= 0:
        yield offset + run_start, data[run_start:]


def pump(
    pieces: Iterable[tuple[int, memoryview | bytes]],
    writer: DiskWriter | None,
    hasher: DiskHasher | None,
    total: int,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Hash and write pieces; returns (source bytes seen, data bytes written)."""
    seen = 0
    written = 0
    last_report = 0.0
    for offset, data in pieces:
        view = memoryview(data)
        if hasher is not None:
            hasher.zeros_until(offset)
            hasher.update(view)
        if writer is not None:
            for run_off, run in _nonzero_runs(offset, view):
                end = run_off + len(run)
                if end % writer.alignment and end != writer.virtual_size:
                    # a source whose size is not sector-aligned: pad its last run with zeros
                    run = memoryview(bytes(run) + bytes(writer.alignment - end % writer.alignment))
                writer.write(run_off, run)
                written += len(run)
        seen += len(view)
        now = time.monotonic()
        if progress is not None and now - last_report > 0.2:
            progress(seen, total)
            last_report = now
    if progress is not None:
        progress(seen, total)
    return seen, written


def convert(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    fmt: DiskFormat,
    *,
    size: int | None = None,
    overwrite: bool = False,
    md5: bool = False,
    progress: Progress | None = None,
    source_format: DiskFormat | None = None,
    **writer_options: Any,
) -> ConvertResult:
    """Convert ``source`` to ``output`` in ``fmt``; the output appears only when complete."""
    src, dst = os.fspath(source), os.fspath(output)
    if os.path.exists(dst) and os.path.samefile(src, dst):
        raise InputError(f"{dst}: the output would overwrite the source")
    started = time.monotonic()
    with open_disk(src, source_format) as reader:
        out_size = output_size(fmt, reader.virtual_size, size)
        total = reader.allocated_bytes()
        writer = make_writer(fmt, LocalFileSink(dst, overwrite=overwrite), out_size, **writer_options)
        hasher = DiskHasher(md5)
        with writer:
            _seen, written = pump(read_pieces(reader, bytearray(PIECE)), writer, hasher, total, progress)
            hasher.zeros_until(out_size)
        sha, md = hasher.result()
        return ConvertResult(
            src, reader.format, dst, fmt, out_size, total, written, sha, md, time.monotonic() - started
        )


def convert_stream(
    stream: BinaryIO,
    output: str | os.PathLike[str],
    fmt: DiskFormat,
    *,
    name: str = "<stream>",
    overwrite: bool = False,
    md5: bool = False,
    progress: Progress | None = None,
    expected_size: int | None = None,
    **writer_options: Any,
) -> ConvertResult:
    """Convert a streamOptimized VMDK read front to back (e.g. an NFC download) without seeking."""
    started = time.monotonic()
    grains = StreamGrains(stream, name)
    capacity = grains.capacity
    out_size = output_size(fmt, capacity, expected_size)
    writer = make_writer(fmt, LocalFileSink(output, overwrite=overwrite), out_size, **writer_options)
    hasher = DiskHasher(md5)
    with writer:
        seen, written = pump(grains, writer, hasher, expected_size or capacity, progress)
        hasher.zeros_until(out_size)
    sha, md = hasher.result()
    return ConvertResult(
        name,
        DiskFormat.VMDK_STREAM,
        os.fspath(output),
        fmt,
        out_size,
        seen,
        written,
        sha,
        md,
        time.monotonic() - started,
    )


def hash_disk(
    source: str | os.PathLike[str],
    md5: bool = False,
    progress: Progress | None = None,
    source_format: DiskFormat | None = None,
) -> ConvertResult:
    """The virtual-disk digest of an image, reading only its allocated extents."""
    started = time.monotonic()
    with open_disk(source, source_format) as reader:
        total = reader.allocated_bytes()
        hasher = DiskHasher(md5)
        pump(read_pieces(reader, bytearray(PIECE)), None, hasher, total, progress)
        hasher.zeros_until(reader.virtual_size)
        sha, md = hasher.result()
        return ConvertResult(
            os.fspath(source),
            reader.format,
            None,
            None,
            reader.virtual_size,
            total,
            0,
            sha,
            md,
            time.monotonic() - started,
        )
