"""Sizes, extents and the little arithmetic every format shares (block runs, packed tables, zero tests)."""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from imageport.compat import SLOTS
from imageport.errors import FormatError

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
    if isinstance(data, memoryview):
        if data.format != "B":
            # lengths and slices in bytes, whatever the items (a strided view is copied once)
            data = data.cast("B") if data.c_contiguous else memoryview(data.tobytes())
        if isinstance(data.obj, (bytes, bytearray)) and data.nbytes == len(data.obj):
            data = data.obj  # a view of a whole buffer: compare the buffer itself, no copy
    n = len(data)
    if n <= len(ZERO_4MiB):
        # bytes and bytearray compare with memcmp; a memoryview would compare item by item, so a
        # partial view is copied once (half the cost of the compare-from-copy for a 4 MiB chunk)
        chunk = data if isinstance(data, (bytes, bytearray)) else bytes(data)
        return chunk == ZERO_4MiB[:n]
    return all(is_zero(data[i : i + len(ZERO_4MiB)]) for i in range(0, n, len(ZERO_4MiB)))


def check_virtual_size(path: str, structure: str, offset: int, size: int, multiple: int = SECTOR) -> int:
    if size <= 0 or size > MAX_VIRTUAL_SIZE:
        raise FormatError(path, structure, offset, f"virtual size {size} is outside 1 byte .. 64 TiB")
    if size % multiple:
        raise FormatError(path, structure, offset, f"virtual size {size} is not a multiple of {multiple}")
    return size
