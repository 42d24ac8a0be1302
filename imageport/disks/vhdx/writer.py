"""``VhdxWriter``: a clean dynamic (or differencing) VHDX."""

from __future__ import annotations

import struct
import uuid
from array import array

from imageport.disks.extents import (
    KiB,
    MiB,
    block_runs,
    pack_array,
)
from imageport.disks.formats import DiskWriter
from imageport.disks.io import Sink
from imageport.disks.vhdx.layout import (
    BAT_GUID,
    DEFAULT_BLOCK_SIZE,
    FILE_PARAMETERS,
    FULLY_PRESENT,
    HEADER,
    HEADER_OFFSETS,
    LOGICAL_SECTOR_SIZE,
    META_ENTRY,
    META_HEADER,
    METADATA_GUID,
    NOT_PRESENT,
    NULL_GUID,
    PAGE83_DATA,
    PHYSICAL_SECTOR_SIZE,
    REGION_ENTRY,
    REGION_HEADER,
    REGION_OFFSETS,
    SIGNATURE,
    VIRTUAL_DISK_SIZE,
    _with_crc,
    bat_entry_count,
    chunk_ratio,
)
from imageport.errors import FormatError
from imageport.models import DiskFormat


class VhdxWriter(DiskWriter):
    """A clean dynamic VHDX: file id, two headers, two region tables, 1 MiB log,
    metadata, BAT, then payload blocks appended in write order."""

    format = DiskFormat.VHDX

    def __init__(
        self,
        sink: Sink,
        virtual_size: int,
        block_size: int = DEFAULT_BLOCK_SIZE,
        logical_sector: int = 512,
        physical_sector: int = 4096,
    ) -> None:
        if logical_sector not in (512, 4096) or physical_sector not in (512, 4096):
            raise FormatError(sink.name, "VHDX metadata", None, "sector sizes must be 512 or 4096")
        if virtual_size % logical_sector:
            raise FormatError(
                sink.name,
                "VHDX metadata",
                None,
                f"size {virtual_size} is not a multiple of the {logical_sector}-byte sector",
            )
        if block_size < MiB or block_size > 256 * MiB or block_size & (block_size - 1):
            raise FormatError(sink.name, "VHDX metadata", None, f"block size {block_size} is not 1-256 MiB, 2^n")
        super().__init__(sink, virtual_size)
        self.alignment = logical_sector
        self.block_size = block_size
        self.logical_sector = logical_sector
        self.physical_sector = physical_sector
        self.ratio = chunk_ratio(logical_sector, block_size)
        self.payload_blocks = -(-virtual_size // block_size)
        self.bat = array("Q", [NOT_PRESENT]) * bat_entry_count(self.payload_blocks, self.ratio, False)
        self.log_offset, self.log_length = MiB, MiB
        self.meta_offset, self.meta_length = 2 * MiB, MiB
        self.bat_offset = 3 * MiB
        self.bat_length = -(-len(self.bat) * 8 // MiB) * MiB
        self.next_free = self.bat_offset + self.bat_length

    def _write(self, offset: int, data: memoryview) -> None:
        for block, inner, pos, n in block_runs(offset, len(data), self.block_size):
            index = block + block // self.ratio
            if self.bat[index] == NOT_PRESENT:
                self.bat[index] = (self.next_free // MiB) << 20 | FULLY_PRESENT
                self.next_free += self.block_size
            self.sink.pwrite((self.bat[index] >> 20) * MiB + inner, data[pos : pos + n])

    def _finish(self) -> None:
        sink = self.sink
        sink.truncate(self.next_free)
        sink.pwrite(self.bat_offset, pack_array(self.bat, "little"))
        sink.pwrite(self.meta_offset, self._metadata())
        regions = bytearray(64 * KiB)
        REGION_HEADER.pack_into(regions, 0, b"regi", 0, 2, 0)
        REGION_ENTRY.pack_into(regions, 16, BAT_GUID.bytes_le, self.bat_offset, self.bat_length, 1)
        REGION_ENTRY.pack_into(regions, 48, METADATA_GUID.bytes_le, self.meta_offset, self.meta_length, 1)
        region_block = _with_crc(bytes(regions))
        for off in REGION_OFFSETS:
            sink.pwrite(off, region_block)
        file_write, data_write = uuid.uuid4().bytes_le, uuid.uuid4().bytes_le
        for seq, off in enumerate(HEADER_OFFSETS):
            header = bytearray(4 * KiB)
            HEADER.pack_into(
                header, 0, b"head", 0, seq, file_write, data_write, NULL_GUID, 0, 1, self.log_length, self.log_offset
            )
            sink.pwrite(off, _with_crc(bytes(header)))
        ident = SIGNATURE + "imageport".encode("utf-16-le")
        sink.pwrite(0, ident)

    def _metadata(self) -> bytes:
        items = [
            (FILE_PARAMETERS, struct.pack("<II", self.block_size, 0), 4),
            (VIRTUAL_DISK_SIZE, struct.pack("<Q", self.virtual_size), 6),
            (PAGE83_DATA, uuid.uuid4().bytes_le, 6),
            (LOGICAL_SECTOR_SIZE, struct.pack("<I", self.logical_sector), 6),
            (PHYSICAL_SECTOR_SIZE, struct.pack("<I", self.physical_sector), 6),
        ]
        region = bytearray(64 * KiB + 4 * KiB)
        META_HEADER.pack_into(region, 0, b"metadata", 0, len(items), bytes(20))
        data_off = 64 * KiB
        for i, (gid, payload, flags) in enumerate(items):
            META_ENTRY.pack_into(region, 32 + 32 * i, gid.bytes_le, data_off, len(payload), flags, 0)
            region[data_off : data_off + len(payload)] = payload
            data_off += len(payload)
        return bytes(region)
