"""VMDK (VMware Virtual Disk Format 5.0 technote; qemu block/vmdk.c as cross-check).

One concept per module:

- ``header``: the 512-byte sparse extent header, its flags and markers, grain inflation;
- ``descriptor``: the text descriptor (standalone or embedded) -- strict parsing, and the
  text the writers emit;
- ``extents``: the zero, flat and hosted-sparse extents a descriptor lists;
- ``reader``: ``VmdkReader``, a descriptor's extents laid end to end, with a parent chain;
- ``stream``: ``StreamGrains``, one-pass decoding of a streamOptimized stream (an NFC download);
- ``writers``: streamOptimized and monolithicSparse writers.

The names below are the package's public surface: import them from ``imageport.disks.vmdk``.
"""

from imageport.disks.vmdk.descriptor import (
    CREATE_TYPES,
    MAX_DESCRIPTOR,
    descriptor_area_text,
    descriptor_text,
    parse_descriptor,
)
from imageport.disks.vmdk.header import (
    FLAG_COMPRESSED,
    FLAG_MARKERS,
    FLAG_NEWLINE,
    FLAG_RGD,
    FLAG_ZERO_GTE,
    GD_AT_END,
    GRAIN_SECTORS,
    GTES_PER_GT,
    HEADER,
    MAGIC,
    MARKER_EOS,
    MARKER_FOOTER,
    MARKER_GD,
    MARKER_GT,
    SparseHeader,
    build_header,
    inflate_grain,
    parse_header,
)
from imageport.disks.vmdk.reader import VmdkReader
from imageport.disks.vmdk.stream import StreamGrains
from imageport.disks.vmdk.writers import MonolithicSparseVmdkWriter, StreamOptimizedVmdkWriter

__all__ = [
    "CREATE_TYPES",
    "FLAG_COMPRESSED",
    "FLAG_MARKERS",
    "FLAG_NEWLINE",
    "FLAG_RGD",
    "FLAG_ZERO_GTE",
    "GD_AT_END",
    "GRAIN_SECTORS",
    "GTES_PER_GT",
    "HEADER",
    "MAGIC",
    "MARKER_EOS",
    "MARKER_FOOTER",
    "MARKER_GD",
    "MARKER_GT",
    "MAX_DESCRIPTOR",
    "MonolithicSparseVmdkWriter",
    "SparseHeader",
    "StreamGrains",
    "StreamOptimizedVmdkWriter",
    "VmdkReader",
    "build_header",
    "descriptor_area_text",
    "descriptor_text",
    "inflate_grain",
    "parse_descriptor",
    "parse_header",
]
