"""VHDX (Microsoft VHDX Format Specification v1.00). All fields little-endian;
GUIDs in Microsoft's mixed-endian layout (``uuid.UUID(bytes_le=...)``).

File layout::

    0       file identifier "vhdxfile" + UTF-16 creator
    64 KiB  header 1 (4 KiB: "head", CRC-32C, sequence, FileWriteGuid,
            DataWriteGuid, LogGuid, LogVersion, Version=1, LogLength, LogOffset)
    128 KiB header 2           -- the valid one with the higher sequence is current
    192 KiB region table 1 (64 KiB: "regi", CRC-32C, count; entries GUID/offset/length/required)
    256 KiB region table 2
    >=1 MiB log, metadata region, BAT, payload blocks (1 MiB aligned)

Metadata region: a "metadata" table of (item GUID, offset, length, flags);
required items are File Parameters (block size, LeaveBlockAllocated,
HasParent), Virtual Disk Size, Page 83 Data, Logical and Physical Sector Size,
and for differencing disks the Parent Locator (key/value UTF-16 strings).

BAT: u64 entries, state in bits 0-2, file offset in MiB in bits 20-63. After
every *chunk ratio* payload entries comes one sector-bitmap entry, where
chunk ratio = 2^23 * logical sector size / block size.

A non-empty log (LogGuid set) means the file was not closed cleanly and its
BAT or metadata may be stale: its active sequence is replayed into an
in-memory overlay (``vhdx_log``) that every later read goes through, so the
disk reads as after a replay and the file is never written. The writer produces a clean dynamic VHDX with Hyper-V's
defaults (32 MiB blocks, 512-byte logical / 4096-byte physical sectors).

One concept per module: ``layout`` (signatures, GUIDs, BAT states, CRC sealing), ``reader`` (``VhdxReader``),
``writer`` (``VhdxWriter``); the log replay is ``imageport.disks.vhdx_log``. The names below are
the package's public surface: import them from ``imageport.disks.vhdx``.
"""

from imageport.disks.vhdx.layout import (
    BAT_GUID,
    DEFAULT_BLOCK_SIZE,
    FILE_PARAMETERS,
    FULLY_PRESENT,
    HEADER,
    HEADER_OFFSETS,
    KNOWN_METADATA,
    LOGICAL_SECTOR_SIZE,
    META_ENTRY,
    META_HEADER,
    METADATA_GUID,
    NOT_PRESENT,
    NULL_GUID,
    PAGE83_DATA,
    PARENT_LOCATOR,
    PARTIALLY_PRESENT,
    PHYSICAL_SECTOR_SIZE,
    REGION_ENTRY,
    REGION_HEADER,
    REGION_OFFSETS,
    SIGNATURE,
    UNDEFINED,
    UNMAPPED,
    UNMAPPED_V095,
    VIRTUAL_DISK_SIZE,
    ZERO,
    ZERO_STATES,
    bat_entry_count,
    chunk_ratio,
)
from imageport.disks.vhdx.reader import (
    VhdxReader,
)
from imageport.disks.vhdx.writer import (
    VhdxWriter,
)

__all__ = [
    "BAT_GUID",
    "DEFAULT_BLOCK_SIZE",
    "FILE_PARAMETERS",
    "FULLY_PRESENT",
    "HEADER",
    "HEADER_OFFSETS",
    "KNOWN_METADATA",
    "LOGICAL_SECTOR_SIZE",
    "METADATA_GUID",
    "META_ENTRY",
    "META_HEADER",
    "NOT_PRESENT",
    "NULL_GUID",
    "PAGE83_DATA",
    "PARENT_LOCATOR",
    "PARTIALLY_PRESENT",
    "PHYSICAL_SECTOR_SIZE",
    "REGION_ENTRY",
    "REGION_HEADER",
    "REGION_OFFSETS",
    "SIGNATURE",
    "UNDEFINED",
    "UNMAPPED",
    "UNMAPPED_V095",
    "VIRTUAL_DISK_SIZE",
    "ZERO",
    "ZERO_STATES",
    "VhdxReader",
    "VhdxWriter",
    "bat_entry_count",
    "chunk_ratio",
]
