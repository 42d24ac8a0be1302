"""Pieces of a virtual disk as the pass walks it: pooled 4 MiB reads, stream grains, zero detection."""

from __future__ import annotations

import functools
import queue
from collections.abc import Callable, Iterable, Iterator

from imageport.disks.extents import MiB, is_zero
from imageport.disks.formats import DiskReader

PIECE = 4 * MiB
ZERO_GRANULE = 64 * 1024
_ZERO8 = memoryview(bytes(8))

Piece = tuple[int, "memoryview | bytes", "Callable[[], None] | None"]
"""(virtual offset, data, release): ``release`` hands a pooled buffer back once hashed."""


def read_pieces(reader: DiskReader, buffers: int = 4, size: int = PIECE) -> Iterator[Piece]:
    """The allocated extents in pieces aligned to ``size``, read into a small pool of reused buffers."""
    pool: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    for _ in range(buffers):
        pool.put(bytearray(size))
    for ext in reader.extents():
        start = ext.offset
        while start < ext.end:
            n = min(size - start % size, ext.end - start)
            buf = pool.get()  # blocks until the hasher is done with an older piece
            yield start, reader.readinto(start, memoryview(buf)[:n]), functools.partial(pool.put, buf)
            start += n


def stream_pieces(items: Iterable[tuple[int, bytes]]) -> Iterator[Piece]:
    """Pieces from a producer that hands out fresh bytes (e.g. decoded stream grains)."""
    for offset, data in items:
        yield offset, data, None


def nonzero_runs(offset: int, data: memoryview) -> Iterator[tuple[int, memoryview]]:
    """Sub-ranges of ``data`` that are not all zero, at 64 KiB granularity (aligned to the disk)."""
    run_start = -1
    pos = 0
    n = len(data)
    while pos < n:
        step = min(ZERO_GRANULE - (offset + pos) % ZERO_GRANULE, n - pos)
        # A granule that starts with a non-zero byte is data: decide without copying it.
        zero = data[pos : pos + 8] == _ZERO8[: min(8, step)] and is_zero(data[pos : pos + step])
        if not zero and run_start < 0:
            run_start = pos
        elif zero and run_start >= 0:
            yield offset + run_start, data[run_start:pos]
            run_start = -1
        pos += step
    if run_start >= 0:
        yield offset + run_start, data[run_start:]
