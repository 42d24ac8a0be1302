"""The VHD structures: footer, dynamic header, checksums, geometry; the constants both sides use."""

from __future__ import annotations

import struct
import time
import uuid
from typing import Any

from imageport.disks.extents import (
    SECTOR,
    MiB,
    TiB,
)
from imageport.errors import FormatError

COOKIE = b"conectix"
DYN_COOKIE = b"cxsparse"
FOOTER = struct.Struct(">8sIIQI4sI4sQQHBBII16sB427s")
DYN_HEADER = struct.Struct(">8sQQIIII16sII512s192s256s")
LOCATOR = struct.Struct(">4sIIIQ")
FIXED, DYNAMIC, DIFFERENCING = 2, 3, 4
UNALLOCATED = 0xFFFFFFFF
ALL_ONES = 0xFFFFFFFFFFFFFFFF
EPOCH_2000 = 946684800
DEFAULT_BLOCK_SIZE = 2 * MiB
MAX_DYNAMIC_SIZE = 2040 * 1024 * MiB  # the largest CHS-addressable dynamic VHD qemu and Hyper-V agree on
MAX_FIXED_SIZE = 32 * TiB  # Azure's direct-upload maximum (footer-only format)
CREATOR_APP = b"win "
CREATOR_VERSION = 0x000A0000
CREATOR_OS = b"Wi2k"


def checksum(data: bytes, field_offset: int) -> int:
    """One's complement of the byte sum, the 4-byte field at ``field_offset`` counted as zero."""
    total = sum(data) - sum(data[field_offset : field_offset + 4])
    return (~total) & 0xFFFFFFFF


def chs_geometry(size: int) -> tuple[int, int, int]:
    """CHS from the specification's appendix (qemu's ``calculate_geometry`` is identical)."""
    total = min(size // SECTOR, 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = max(4, (cth + 1023) // 1024)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def azure_size(size: int) -> int:
    """The virtual size Azure accepts for ``size`` bytes: rounded up to a whole MiB, at least 20 MiB."""
    return max(20 * MiB, -(-size // MiB) * MiB)


def build_footer(size: int, disk_type: int, data_offset: int, unique_id: bytes) -> bytes:
    cyl, heads, spt = chs_geometry(size)
    stamp = max(0, int(time.time()) - EPOCH_2000)
    fields = [
        COOKIE,
        2,
        0x00010000,
        data_offset,
        stamp,
        CREATOR_APP,
        CREATOR_VERSION,
        CREATOR_OS,
        size,
        size,
        cyl,
        heads,
        spt,
        disk_type,
        0,
        unique_id,
        0,
        bytes(427),
    ]
    raw = FOOTER.pack(*fields)
    fields[14] = checksum(raw, 64)
    return FOOTER.pack(*fields)


def parse_footer(path: str, data: bytes, offset: int) -> dict[str, Any]:
    (
        cookie,
        _features,
        _version,
        data_offset,
        stamp,
        creator,
        creator_ver,
        creator_os,
        orig,
        current,
        cyl,
        heads,
        spt,
        disk_type,
        csum,
        unique_id,
        saved,
        _r,
    ) = FOOTER.unpack(data)
    if cookie != COOKIE:
        raise FormatError(path, "VHD footer", offset, f"cookie is {cookie!r}, expected b'conectix'")
    if checksum(data, 64) != csum:
        raise FormatError(path, "VHD footer", offset, f"checksum 0x{csum:08x} does not match its contents")
    if disk_type not in (FIXED, DYNAMIC, DIFFERENCING):
        raise FormatError(path, "VHD footer", offset, f"disk type {disk_type} is not fixed, dynamic or differencing")
    if saved:
        raise FormatError(path, "VHD footer", offset, "the disk is in a saved state (a VM was suspended on it)")
    return {
        "data_offset": data_offset,
        "timestamp": stamp,
        "creator": creator.decode("latin-1"),
        "creator_version": creator_ver,
        "creator_os": creator_os.decode("latin-1"),
        "original_size": orig,
        "current_size": current,
        "geometry": (cyl, heads, spt),
        "disk_type": disk_type,
        "unique_id": uuid.UUID(bytes=unique_id),
        "checksum": csum,
    }


def is_vhd_footer(data: bytes) -> bool:
    return len(data) == 512 and data[:8] == COOKIE
