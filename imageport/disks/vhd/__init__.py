"""VHD: fixed, dynamic and differencing (Microsoft Virtual Hard Disk Image Format Specification 1.0).

Layout (all fields big-endian):

- Footer, 512 bytes, last in the file (dynamic disks keep a copy at offset 0)::

    0 cookie "conectix" | 8 features | 12 version 0x00010000 | 16 data offset (all-ones: fixed)
    24 timestamp (s since 2000-01-01) | 28 creator app | 32 creator version | 36 creator OS
    40 original size | 48 current size | 56 geometry C u16/H u8/S u8 | 60 disk type (2/3/4)
    64 checksum | 68 unique id | 84 saved state | 85 reserved (427)

- Dynamic header, 1024 bytes at the footer's data offset::

    0 "cxsparse" | 8 data offset (all-ones) | 16 BAT offset | 24 version | 28 max BAT entries
    32 block size | 36 checksum | 40 parent UUID | 56 parent timestamp | 60 reserved
    64 parent name (UTF-16BE, 512) | 576 8 parent locators x 24 | 768 reserved (256)

- BAT: u32 sector offsets, 0xFFFFFFFF = unallocated. A block is a sector bitmap
  (bit set = sector present here, MSB first; padded to 512) followed by the data.

Checksum: one's complement of the byte sum with the checksum field zeroed.

Size: we trust ``current size`` (what Hyper-V and Azure use). Writers set
current = original = the size asked, derive CHS from it (capped), and sign as
creator ``win `` so qemu also reads the size from ``current size`` (qemu
falls back to CHS for unknown creators and would round our size down).
Azure accepts only fixed VHDs of N MiB + 512 bytes; ``azure_size`` rounds up.

One concept per module: ``layout`` (footer, dynamic header, checksums, geometry), ``reader`` (fixed, dynamic,
differencing; ``open_vhd``), ``writers`` (fixed, dynamic). The names below are the package's public surface:
import them from ``imageport.disks.vhd``.
"""

from imageport.disks.vhd.layout import (
    ALL_ONES,
    COOKIE,
    CREATOR_APP,
    CREATOR_OS,
    CREATOR_VERSION,
    DEFAULT_BLOCK_SIZE,
    DIFFERENCING,
    DYN_COOKIE,
    DYN_HEADER,
    DYNAMIC,
    EPOCH_2000,
    FIXED,
    FOOTER,
    LOCATOR,
    MAX_DYNAMIC_SIZE,
    MAX_FIXED_SIZE,
    UNALLOCATED,
    azure_size,
    build_footer,
    checksum,
    chs_geometry,
    is_vhd_footer,
    parse_footer,
)
from imageport.disks.vhd.reader import (
    VhdDynamicReader,
    VhdFixedReader,
    footer_markers,
    open_vhd,
)
from imageport.disks.vhd.writers import (
    VhdDynamicWriter,
    VhdFixedWriter,
)

__all__ = [
    "ALL_ONES",
    "COOKIE",
    "CREATOR_APP",
    "CREATOR_OS",
    "CREATOR_VERSION",
    "DEFAULT_BLOCK_SIZE",
    "DIFFERENCING",
    "DYNAMIC",
    "DYN_COOKIE",
    "DYN_HEADER",
    "EPOCH_2000",
    "FIXED",
    "FOOTER",
    "LOCATOR",
    "MAX_DYNAMIC_SIZE",
    "MAX_FIXED_SIZE",
    "UNALLOCATED",
    "VhdDynamicReader",
    "VhdDynamicWriter",
    "VhdFixedReader",
    "VhdFixedWriter",
    "azure_size",
    "build_footer",
    "checksum",
    "chs_geometry",
    "footer_markers",
    "is_vhd_footer",
    "open_vhd",
    "parse_footer",
]
