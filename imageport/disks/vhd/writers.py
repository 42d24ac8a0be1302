"""VHD writers: fixed (Azure's N MiB + 512 layout) and dynamic."""

from __future__ import annotations

import uuid
from array import array

from imageport.disks.extents import (
    SECTOR,
    block_runs,
    pack_array,
)
from imageport.disks.formats import DiskWriter
from imageport.disks.io import Sink
from imageport.disks.vhd.layout import (
    ALL_ONES,
    DEFAULT_BLOCK_SIZE,
    DYN_COOKIE,
    DYN_HEADER,
    DYNAMIC,
    FIXED,
    MAX_DYNAMIC_SIZE,
    MAX_FIXED_SIZE,
    UNALLOCATED,
    build_footer,
    checksum,
)
from imageport.errors import FormatError
from imageport.models import DiskFormat


class VhdFixedWriter(DiskWriter):
    """Fixed VHD: the data in place (holes stay holes), then the footer at ``virtual_size``."""

    format = DiskFormat.VHD

    def __init__(self, sink: Sink, virtual_size: int) -> None:
        if virtual_size % SECTOR or virtual_size > MAX_FIXED_SIZE:
            raise FormatError(sink.name, "VHD footer", None, f"size {virtual_size} must be a multiple of 512, ≤ 32 TiB")
        super().__init__(sink, virtual_size)
        sink.truncate(virtual_size + 512)

    def footer(self) -> bytes:
        return build_footer(self.virtual_size, FIXED, ALL_ONES, uuid.uuid4().bytes)

    def _write(self, offset: int, data: memoryview) -> None:
        self.sink.pwrite(offset, data)

    def _finish(self) -> None:
        self.sink.pwrite(self.virtual_size, self.footer())


class VhdDynamicWriter(DiskWriter):
    """Dynamic VHD, qemu's layout: footer copy, header at 512, BAT at 1536, blocks, footer."""

    format = DiskFormat.VHD_DYNAMIC

    def __init__(self, sink: Sink, virtual_size: int, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        if virtual_size % SECTOR or virtual_size > MAX_DYNAMIC_SIZE:
            raise FormatError(
                sink.name,
                "VHD footer",
                None,
                f"size {virtual_size} must be a multiple of 512 and at most 2040 GiB for a dynamic VHD",
            )
        super().__init__(sink, virtual_size)
        self.block_size = block_size
        self.entries = -(-virtual_size // block_size)
        self.bat = array("I", [UNALLOCATED]) * self.entries
        self.bat_offset = 1536
        self.bitmap = b"\xff" * (block_size // SECTOR // 8)
        self.bitmap_size = -(-len(self.bitmap) // SECTOR) * SECTOR
        self.next_free = self.bat_offset + -(-self.entries * 4 // SECTOR) * SECTOR

    def _write(self, offset: int, data: memoryview) -> None:
        for block, inner, pos, n in block_runs(offset, len(data), self.block_size):
            if self.bat[block] == UNALLOCATED:
                self.bat[block] = self.next_free // SECTOR
                # All sectors marked present (as qemu and Hyper-V do); unwritten ones read as zeros.
                self.sink.pwrite(self.next_free, self.bitmap)
                self.next_free += self.bitmap_size + self.block_size
            self.sink.pwrite(self.bat[block] * SECTOR + self.bitmap_size + inner, data[pos : pos + n])

    def _finish(self) -> None:
        unique_id = uuid.uuid4().bytes
        footer = build_footer(self.virtual_size, DYNAMIC, 512, unique_id)
        fields = [
            DYN_COOKIE,
            ALL_ONES,
            self.bat_offset,
            0x00010000,
            self.entries,
            self.block_size,
            0,
            bytes(16),
            0,
            0,
            bytes(512),
            bytes(192),
            bytes(256),
        ]
        header = DYN_HEADER.pack(*fields)
        fields[6] = checksum(header, 36)
        self.sink.pwrite(0, footer)
        self.sink.pwrite(512, DYN_HEADER.pack(*fields))
        self.sink.pwrite(self.bat_offset, pack_array(self.bat, "big"))
        self.sink.pwrite(self.next_free, footer)
        self.sink.truncate(self.next_free + 512)
