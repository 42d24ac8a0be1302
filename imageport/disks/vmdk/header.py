"""VMDK sparse extent header (VMware Virtual Disk Format 5.0 technote; qemu block/vmdk.c as cross-check).

Sparse extent header, 512 bytes little-endian::

    0x00 "KDMV" | 0x04 version | 0x08 flags (bit0 newline test, bit1 redundant GT,
    bit2 zeroed-grain GTEs, bit16 compressed grains, bit17 markers) | 0x0C capacity (sectors)
    0x14 grainSize (sectors) | 0x1C descriptorOffset | 0x24 descriptorSize
    0x2C numGTEsPerGT (512) | 0x30 rgdOffset | 0x38 gdOffset (all-ones: "GD at end")
    0x40 overHead | 0x48 uncleanShutdown | 0x49 "\\n \\r\\n" | 0x4D compressAlgorithm (1 = deflate)

Grain directory (GD) entries point to grain tables (GTs); GT entries point to
grains, in sectors; 0 = unallocated, 1 = zero grain (with bit 2).

streamOptimized: compressed grains, each as a marker {u64 lba, u32 size,
zlib data} padded to 512; metadata markers {u64 numSectors, u32 0, u32 type}
(0 EOS, 1 GT, 2 GD, 3 footer); the real gdOffset is in the footer (a header
copy) at -1024.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from imageport.disks.extents import SECTOR, check_virtual_size
from imageport.errors import FormatError

MAGIC = b"KDMV"
HEADER = struct.Struct("<4sIIQQQQIQQQB4sH433s")
GD_AT_END = 0xFFFFFFFFFFFFFFFF
FLAG_NEWLINE, FLAG_RGD, FLAG_ZERO_GTE, FLAG_COMPRESSED, FLAG_MARKERS = 1, 2, 4, 1 << 16, 1 << 17
MARKER_EOS, MARKER_GT, MARKER_GD, MARKER_FOOTER = 0, 1, 2, 3
GRAIN_SECTORS = 128  # 64 KiB, what VMware and qemu use
GTES_PER_GT = 512


@dataclass
class SparseHeader:
    version: int
    flags: int
    capacity: int
    grain_size: int
    descriptor_offset: int
    descriptor_size: int
    gtes_per_gt: int
    rgd_offset: int
    gd_offset: int
    overhead: int
    compress: int

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_COMPRESSED)


def parse_header(path: str, raw: bytes, offset: int) -> SparseHeader:
    (
        magic,
        version,
        flags,
        capacity,
        grain,
        desc_off,
        desc_size,
        gtes,
        rgd,
        gd,
        overhead,
        _unclean,
        _nl,
        compress,
        _pad,
    ) = HEADER.unpack(raw)
    if magic != MAGIC:
        raise FormatError(path, "VMDK sparse header", offset, f"magic is {magic!r}, expected b'KDMV'")
    if version not in (1, 2, 3):
        raise FormatError(path, "VMDK sparse header", offset + 4, f"version {version} is not 1, 2 or 3")
    if grain < 8 or grain > 2048 or grain & (grain - 1):
        raise FormatError(path, "VMDK sparse header", offset + 0x14, f"grain size {grain} sectors is unsupported")
    if gtes == 0 or gtes > 4096:
        raise FormatError(path, "VMDK sparse header", offset + 0x2C, f"{gtes} entries per grain table is absurd")
    check_virtual_size(path, "VMDK sparse header", offset + 0x0C, capacity * SECTOR if capacity < 2**50 else -1)
    if flags & FLAG_COMPRESSED and compress != 1:
        raise FormatError(path, "VMDK sparse header", offset + 0x4D, f"compression algorithm {compress} unknown")
    return SparseHeader(version, flags, capacity, grain, desc_off, desc_size, gtes, rgd, gd, overhead, compress)


def build_header(h: SparseHeader) -> bytes:
    return HEADER.pack(
        MAGIC,
        h.version,
        h.flags,
        h.capacity,
        h.grain_size,
        h.descriptor_offset,
        h.descriptor_size,
        h.gtes_per_gt,
        h.rgd_offset,
        h.gd_offset,
        h.overhead,
        0,
        b"\n \r\n",
        h.compress,
        bytes(433),
    )


def inflate_grain(path: str, data: bytes, offset: int, grain_bytes: int) -> bytes:
    try:
        d = zlib.decompressobj()
        out = d.decompress(data, grain_bytes + 1)
    except zlib.error as exc:
        raise FormatError(path, "VMDK compressed grain", offset, f"does not inflate: {exc}") from None
    if len(out) > grain_bytes:
        raise FormatError(path, "VMDK compressed grain", offset, f"inflates past the {grain_bytes}-byte grain")
    return out
