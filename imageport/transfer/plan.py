"""The pure part of a transfer: which chunks to send.

Chunks sit on a fixed grid (4 MiB: the page-blob write limit, and the content
hash's window), so a chunk is both one request and one digest. Only chunks
touched by the source's allocated extents are planned, minus those the target
already holds in full (resume).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from imageport.compat import SLOTS
from imageport.disks.extents import Extent, MiB

CHUNK = 4 * MiB


@dataclass(frozen=True, **SLOTS)
class Chunk:
    index: int
    offset: int
    length: int


def touched(extents: Iterable[Extent], chunk: int = CHUNK) -> set[int]:
    """Indices of the grid chunks that any extent overlaps."""
    indices: set[int] = set()
    for ext in extents:
        if ext.length > 0:
            indices.update(range(ext.offset // chunk, (ext.end - 1) // chunk + 1))
    return indices


def covered(extents: Iterable[Extent], size: int, chunk: int = CHUNK) -> set[int]:
    """Indices of the grid chunks (clipped to ``size``) that the extents cover entirely."""
    full: set[int] = set()
    for ext in extents:
        first = -(-ext.offset // chunk)
        for index in range(first, ext.end // chunk + 1):
            start, end = index * chunk, min((index + 1) * chunk, size)
            if start < end and ext.offset <= start and end <= ext.end:
                full.add(index)
    return full


def plan_chunks(
    source: Iterable[Extent],
    size: int,
    present: set[int] = frozenset(),  # type: ignore[assignment]
    chunk: int = CHUNK,
) -> list[Chunk]:
    """Chunks to send, ascending: touched by the source, not already present at the target."""
    return [
        Chunk(i, i * chunk, min(chunk, size - i * chunk))
        for i in sorted(touched(source, chunk))
        if i not in present and i * chunk < size
    ]
