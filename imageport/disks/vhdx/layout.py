"""The VHDX structures: signatures, GUIDs, BAT states, CRC-32C sealing, BAT arithmetic."""

from __future__ import annotations

import struct
import uuid

from imageport.disks.checksums import crc32c
from imageport.disks.extents import (
    KiB,
    MiB,
)

SIGNATURE = b"vhdxfile"
HEADER_OFFSETS = (64 * KiB, 128 * KiB)
REGION_OFFSETS = (192 * KiB, 256 * KiB)
HEADER = struct.Struct("<4sIQ16s16s16sHHIQ")
REGION_HEADER = struct.Struct("<4sIII")
REGION_ENTRY = struct.Struct("<16sQII")
META_HEADER = struct.Struct("<8sHH20s")
META_ENTRY = struct.Struct("<16sIIII")

BAT_GUID = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_GUID = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
PAGE83_DATA = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR_SIZE = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR_SIZE = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
KNOWN_METADATA = {
    FILE_PARAMETERS,
    VIRTUAL_DISK_SIZE,
    PAGE83_DATA,
    LOGICAL_SECTOR_SIZE,
    PHYSICAL_SECTOR_SIZE,
    PARENT_LOCATOR,
}

NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED, UNMAPPED_V095, FULLY_PRESENT, PARTIALLY_PRESENT = 0, 1, 2, 3, 5, 6, 7
ZERO_STATES = {NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED, UNMAPPED_V095}
DEFAULT_BLOCK_SIZE = 32 * MiB
NULL_GUID = bytes(16)


def _with_crc(block: bytes, field_offset: int = 4) -> bytes:
    zeroed = block[:field_offset] + bytes(4) + block[field_offset + 4 :]
    return zeroed[:field_offset] + struct.pack("<I", crc32c(zeroed)) + zeroed[field_offset + 4 :]


def _crc_ok(block: bytes, field_offset: int = 4) -> bool:
    stored = struct.unpack_from("<I", block, field_offset)[0]
    return crc32c(block[:field_offset] + bytes(4) + block[field_offset + 4 :]) == stored


def chunk_ratio(logical_sector: int, block_size: int) -> int:
    return (1 << 23) * logical_sector // block_size


def bat_entry_count(payload_blocks: int, ratio: int, differencing: bool) -> int:
    if differencing:
        return -(-payload_blocks // ratio) * (ratio + 1)
    return payload_blocks + (payload_blocks - 1) // ratio
