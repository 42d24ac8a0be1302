"""One-pass decoding of a streamOptimized VMDK (an NFC export download), without seeking."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from imageport.disks.extents import SECTOR
from imageport.disks.vmdk.header import (
    FLAG_MARKERS,
    FLAG_ZERO_GTE,
    GD_AT_END,
    MARKER_EOS,
    MARKER_FOOTER,
    MARKER_GD,
    MARKER_GT,
    inflate_grain,
    parse_header,
)
from imageport.errors import FormatError


def _read_full(stream: BinaryIO, n: int, name: str, offset: int) -> bytes:
    data = _read_upto(stream, n)
    if len(data) < n:
        raise FormatError(name, "VMDK stream", offset + len(data), "ended in the middle of a record: cut short")
    return data


class StreamGrains:
    """Decode a streamOptimized VMDK read front to back; iterate for (virtual offset, grain data).

    The header is read at construction (so ``capacity`` is known before the
    first grain); grains arrive as markers; metadata (grain tables, directory,
    footer) is skipped; EOS ends it. Memory: one grain. No seeking.
    """

    def __init__(self, stream: BinaryIO, name: str = "<stream>") -> None:
        self.stream = stream
        self.name = name
        self.header = parse_header(name, _read_full(stream, 512, name, 0), 0)
        if not self.header.compressed or not self.header.flags & FLAG_MARKERS:
            raise FormatError(name, "VMDK sparse header", 8, "not a streamOptimized VMDK (no compressed markers)")
        self.capacity = self.header.capacity * SECTOR

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        stream, name, header = self.stream, self.name, self.header
        pos = 512
        skip = header.overhead * SECTOR - pos
        if skip < 0 or skip > 64 * 1024 * 1024:
            raise FormatError(name, "VMDK sparse header", 0x40, f"overhead {header.overhead} sectors is absurd")
        front = _read_full(stream, skip, name, pos)
        expected = self._grains_listed_in_front(front)
        pos += skip
        grain_bytes = header.grain_size * SECTOR
        last_end = 0
        received = 0
        while True:
            marker = _read_upto(stream, SECTOR)
            if not marker:
                # VMware streams end with EOS. qemu's end after the last grain, but list their
                # grains in a directory at the front: accept that end only if every grain came.
                if expected is not None and received == expected:
                    return
                got = f" after {received} of {expected} grains" if expected is not None else ""
                raise FormatError(name, "VMDK stream", pos, f"ended without an end-of-stream marker{got}: cut short")
            if len(marker) < SECTOR:
                raise FormatError(name, "VMDK stream", pos, "ended in the middle of a marker: cut short")
            value, size = struct.unpack_from("<QI", marker)
            if size:
                if size > 2 * grain_bytes:
                    raise FormatError(name, "VMDK grain marker", pos, f"compressed size {size} is absurd")
                total = -(-(12 + size) // SECTOR) * SECTOR
                rest = _read_full(stream, total - SECTOR, name, pos + SECTOR) if total > SECTOR else b""
                data = inflate_grain(name, (marker[12:] + rest)[:size], pos, grain_bytes)
                offset = value * SECTOR
                if offset < last_end or offset >= self.capacity:
                    raise FormatError(name, "VMDK grain marker", pos, f"lba {value} is out of order or past the end")
                data = data[: self.capacity - offset]
                last_end = offset + len(data)
                received += 1
                yield offset, data
                pos += total
                continue
            kind = struct.unpack_from("<I", marker, 12)[0]
            if kind == MARKER_EOS:
                return
            if kind not in (MARKER_GT, MARKER_GD, MARKER_FOOTER) or value > 1 << 24:
                raise FormatError(name, "VMDK metadata marker", pos, f"type {kind} with {value} sectors is unknown")
            _read_full(stream, value * SECTOR, name, pos + SECTOR)
            pos += SECTOR + value * SECTOR

    def _grains_listed_in_front(self, front: bytes) -> int | None:
        """Grains a directory in the header area says to expect; None when it is not there (VMware layout)."""
        h = self.header
        if h.gd_offset == GD_AT_END:
            return None
        base = 512  # ``front`` starts at byte 512 of the stream
        gt_span = h.gtes_per_gt * h.grain_size * SECTOR
        entries = -(-self.capacity // gt_span)
        gd_at = h.gd_offset * SECTOR - base
        if gd_at < 0 or gd_at + 4 * entries > len(front):
            return None
        zero_gte = 1 if h.flags & FLAG_ZERO_GTE else -1
        count = 0
        for gt_sector in struct.unpack_from(f"<{entries}I", front, gd_at):
            if not gt_sector:
                continue
            gt_at = gt_sector * SECTOR - base
            if gt_at < 0 or gt_at + 4 * h.gtes_per_gt > len(front):
                return None
            count += sum(1 for e in struct.unpack_from(f"<{h.gtes_per_gt}I", front, gt_at) if e and e != zero_gte)
        return count


def _read_upto(stream: BinaryIO, n: int) -> bytes:
    """Up to n bytes; fewer only at the end of the stream."""
    chunks = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
