"""Recognise an image's format from its content, never from its name.

Order matters: VHDX and sparse VMDK have magic numbers at offset 0; a dynamic
VHD carries a footer copy at 0; a *fixed* VHD is raw data plus a footer, so it
is recognised by a valid footer in its last 512 bytes (qemu would call it raw);
a small text file describing extents is a VMDK descriptor. Anything else is raw.
"""

from __future__ import annotations

import os

from imageport.disks import vhd
from imageport.disks.base import LOCAL, DiskReader, FileSystem
from imageport.disks.raw import RawReader
from imageport.disks.vhdx import VhdxReader
from imageport.disks.vmdk import FLAG_COMPRESSED, MAX_DESCRIPTOR, VmdkReader
from imageport.disks.vmdk import MAGIC as VMDK_MAGIC
from imageport.errors import FormatError
from imageport.models import DiskFormat

QCOW2_MAGIC = b"QFI\xfb"


def detect_format(path: str, fs: FileSystem = LOCAL) -> DiskFormat:
    source = fs.open(path)
    try:
        size = source.size
        head = source.pread(0, 512)
        tail = source.pread(size - 512, 512) if size >= 512 else b""
    finally:
        source.close()
    if head[:8] == b"vhdxfile":
        return DiskFormat.VHDX
    if head[:4] == VMDK_MAGIC:
        flags = int.from_bytes(head[8:12], "little")
        return DiskFormat.VMDK_STREAM if flags & FLAG_COMPRESSED else DiskFormat.VMDK_SPARSE
    if head[:4] == QCOW2_MAGIC:
        raise FormatError(path, "header", 0, "qcow2 is not a supported input; convert it with qemu-img first")
    if head[:8] == vhd.COOKIE:
        return DiskFormat.VHD_DYNAMIC
    if vhd.is_vhd_footer(tail):
        footer = vhd.parse_footer(path, tail, size - 512)
        return DiskFormat.VHD if footer["disk_type"] == vhd.FIXED else DiskFormat.VHD_DYNAMIC
    if size <= MAX_DESCRIPTOR and head.lstrip().startswith(b"# Disk DescriptorFile"):
        return DiskFormat.VMDK_SPARSE
    return DiskFormat.RAW


def open_disk(path: str | os.PathLike[str], format: DiskFormat | None = None, fs: FileSystem = LOCAL) -> DiskReader:
    """Open an image for reading; ``format`` forces a format instead of detecting it;
    ``fs`` says where it lives (local by default, or e.g. an SMB share)."""
    path = os.fspath(path)
    fmt = format or detect_format(path, fs)
    if fmt is DiskFormat.RAW:
        return RawReader(path, fs)
    if fmt in (DiskFormat.VHD, DiskFormat.VHD_DYNAMIC):
        return vhd.open_vhd(path, fs)
    if fmt is DiskFormat.VHDX:
        return VhdxReader(path, fs)
    return VmdkReader(path, fs)


def editable_format(path: str | os.PathLike[str], fs: FileSystem = LOCAL) -> DiskFormat:
    """The container a copy of ``path`` is written in so it can be changed in place: the image's own,
    except a stream-optimized VMDK (its compressed grains cannot be rewritten), which becomes VHDX."""
    with open_disk(path, fs=fs) as reader:
        return DiskFormat.VHDX if reader.format is DiskFormat.VMDK_STREAM else reader.format
