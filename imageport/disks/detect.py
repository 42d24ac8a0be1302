"""Recognise an image's format from its content, never from its name; refuse damaged ones.

Order matters: VHDX and sparse VMDK have magic numbers at offset 0; a dynamic
VHD carries a footer copy at 0; a *fixed* VHD is raw data plus a footer, so it
is recognised by a valid footer in its last 512 bytes (qemu would call it raw);
a small text file describing extents is a VMDK descriptor.

What is left would be raw, but raw is only what *no* container claims: a
damaged signature (a magic number a few bytes off, a VHD footer not exactly at
the end, descriptor-like text, a size that is not a multiple of 512) means a
damaged container, and reading it as raw would copy the wrong disk while
reporting success. Those are refused with a ``FormatError`` naming what was
found and where (``probe_damage``).

A caller (``--from FORMAT``, a spec's ``format:``) may state the format it
expects: a different detected format is refused (raw stated on a VHDX too);
raw stated on a file with only *damaged* signatures is read as raw, because the
user said so (a raw disk may legitimately hold such bytes).
"""

from __future__ import annotations

import os
import re

from imageport.disks import vhd
from imageport.disks.extents import SECTOR, KiB
from imageport.disks.formats import DiskReader
from imageport.disks.io import ByteSource, FileSystem
from imageport.disks.local_files import LOCAL
from imageport.disks.raw import RawReader
from imageport.disks.vhdx import HEADER_OFFSETS, REGION_OFFSETS, VhdxReader
from imageport.disks.vhdx import SIGNATURE as VHDX_SIGNATURE
from imageport.disks.vmdk import FLAG_COMPRESSED, MAX_DESCRIPTOR, VmdkReader
from imageport.disks.vmdk import MAGIC as VMDK_MAGIC
from imageport.errors import FormatError
from imageport.models import DiskFormat

QCOW2_MAGIC = b"QFI\xfb"
DESCRIPTOR_HEADER = b"# Disk DescriptorFile"
# How far from the end a misplaced VHD footer is looked for (a truncated or padded fixed VHD).
TAIL_SCAN = 64 * KiB
# Text that only a VMDK descriptor holds.
DESCRIPTOR_MARKERS = re.compile(
    rb"(?m)^[ \t]*(?:createType[ \t]*=|parentCID[ \t]*=|ddb\.[A-Za-z]|"
    rb"(?:RW|RDONLY|NOACCESS)[ \t]+\d+[ \t]+(?:FLAT|SPARSE|ZERO|VMFS))"
)
FAMILIES = {
    DiskFormat.VHD: "vhd",
    DiskFormat.VHD_DYNAMIC: "vhd",
    DiskFormat.VMDK_SPARSE: "vmdk",
    DiskFormat.VMDK_STREAM: "vmdk",
    DiskFormat.VHDX: "vhdx",
    DiskFormat.RAW: "raw",
}


def _near(data: bytes, signature: bytes) -> bool:
    """``data`` is ``signature`` with a few bytes changed (more than half still match), not exactly it."""
    same = sum(a == b for a, b in zip(data, signature))  # noqa: B905 (the agent runs on 3.9: no strict=)
    return data[: len(signature)] != signature and same * 2 > len(signature)


def _damaged(path: str, structure: str, offset: int, found: bytes, problem: str) -> FormatError:
    return FormatError(
        path,
        structure,
        offset,
        f"found {found!r}: {problem}; refusing to read it as raw (state --from raw if it really is raw)",
    )


def _sniff(path: str, source: ByteSource) -> DiskFormat | None:
    """The format a valid signature claims, or None (raw, unless ``probe_damage`` finds damage)."""
    size = source.size
    head = source.pread(0, 512)
    if head[:8] == VHDX_SIGNATURE:
        return DiskFormat.VHDX
    if head[:4] == VMDK_MAGIC:
        flags = int.from_bytes(head[8:12], "little")
        return DiskFormat.VMDK_STREAM if flags & FLAG_COMPRESSED else DiskFormat.VMDK_SPARSE
    if head[:4] == QCOW2_MAGIC:
        raise FormatError(path, "header", 0, "qcow2 is not a supported input; convert it with qemu-img first")
    if head[:8] == vhd.COOKIE:
        return DiskFormat.VHD_DYNAMIC
    tail = source.pread(size - 512, 512) if size >= 512 else b""
    if vhd.is_vhd_footer(tail):
        try:
            footer = vhd.parse_footer(path, tail, size - 512)
        except FormatError:
            return None  # a damaged footer: probe_damage says how
        return DiskFormat.VHD if footer["disk_type"] == vhd.FIXED else DiskFormat.VHD_DYNAMIC
    if size <= MAX_DESCRIPTOR and head.lstrip().startswith(DESCRIPTOR_HEADER):
        return DiskFormat.VMDK_SPARSE
    return None


def probe_damage(path: str, source: ByteSource) -> FormatError | None:
    """Why a file no valid signature claims is still not raw: a damaged container's traces."""
    size = source.size
    head = source.pread(0, 1024)
    for signature, structure in ((VHDX_SIGNATURE, "VHDX file identifier"), (vhd.COOKIE, "VHD footer")):
        if _near(head[: len(signature)], signature):
            return _damaged(path, structure, 0, head[:8], f"a damaged {signature.decode()} signature")
    vmdk_newline_test = head[0x49:0x4D] == b"\n \r\n" and int.from_bytes(head[4:8], "little") in (1, 2, 3)
    if _near(head[:4], VMDK_MAGIC) or vmdk_newline_test:
        return _damaged(path, "VMDK sparse header", 0, head[:4], "a damaged VMDK sparse header (KDMV)")
    if head[512:520] == b"cxsparse" or _near(head[512:520], b"cxsparse"):
        return _damaged(path, "VHD footer", 0, head[:8], "a dynamic VHD header at 512 without a valid footer copy")
    for offset in (*HEADER_OFFSETS, *REGION_OFFSETS):
        sig = source.pread(offset, 4)
        if sig in (b"head", b"regi"):
            return _damaged(path, "VHDX file identifier", 0, head[:8], f"a VHDX {sig.decode()} structure at {offset}")
    text = head.lstrip()
    if _near(text[: len(DESCRIPTOR_HEADER)], DESCRIPTOR_HEADER):
        return _damaged(path, "VMDK descriptor", 0, text[:21], "a damaged '# Disk DescriptorFile' line")
    marker = DESCRIPTOR_MARKERS.search(source.pread(0, min(size, MAX_DESCRIPTOR)) if size <= MAX_DESCRIPTOR else head)
    if marker:
        return _damaged(path, "VMDK descriptor", marker.start(), marker.group(0), "VMDK descriptor text")
    start = max(0, size - TAIL_SCAN)
    tail = source.pread(start, size - start)
    at = tail.rfind(vhd.COOKIE)
    if at >= 0:
        where = start + at
        if where == size - 512:  # in place but invalid (checksum, disk type, saved state)
            try:
                vhd.parse_footer(path, tail[at:], where)
            except FormatError as exc:
                return _damaged(path, "VHD footer", where, vhd.COOKIE, str(exc).rsplit(": ", 1)[-1])
        return _damaged(
            path, "VHD footer", where, vhd.COOKIE, f"a VHD footer {size - where} bytes before the end, not 512"
        )
    if len(tail) >= 512 and _near(tail[-512:-504], vhd.COOKIE):
        return _damaged(path, "VHD footer", size - 512, tail[-512:-504], "a damaged VHD footer cookie")
    if size % SECTOR:
        return FormatError(
            path,
            "file size",
            size,
            f"{size} bytes is not a multiple of {SECTOR}: a truncated or damaged image? "
            "(state --from raw if it really is raw)",
        )
    return None


def detect_format(path: str, fs: FileSystem = LOCAL, expected: DiskFormat | None = None) -> DiskFormat:
    """The format of ``path`` from its content; ``expected`` is what the caller says it is (checked)."""
    source = fs.open(path)
    try:
        found = _sniff(path, source)
        damage = probe_damage(path, source) if found is None else None
    finally:
        source.close()
    if found is None and damage is not None:
        if expected is DiskFormat.RAW:
            return DiskFormat.RAW  # the user said so; see the module docstring
        raise damage
    found = found or DiskFormat.RAW
    if expected is not None and FAMILIES[expected] != FAMILIES[found]:
        raise FormatError(path, "format", 0, f"expected {expected.value} (as stated), but the content is {found.value}")
    return found


def open_disk(path: str | os.PathLike[str], format: DiskFormat | None = None, fs: FileSystem = LOCAL) -> DiskReader:
    """Open an image for reading; ``format`` is the format the caller expects (refused when the
    content says otherwise); ``fs`` says where it lives (local by default, or e.g. an SMB share)."""
    path = os.fspath(path)
    given = fs.disk_reader(path, format)
    if given is not None:
        return given
    fmt = detect_format(path, fs, format)
    if fmt is DiskFormat.RAW:
        return RawReader(path, fs)
    if fmt in (DiskFormat.VHD, DiskFormat.VHD_DYNAMIC):
        return vhd.open_vhd(path, fs)
    if fmt is DiskFormat.VHDX:
        return VhdxReader(path, fs)
    return VmdkReader(path, fs)


def editable_format(
    path: str | os.PathLike[str], fs: FileSystem = LOCAL, expected: DiskFormat | None = None
) -> DiskFormat:
    """The container a copy of ``path`` is written in so it can be changed in place: the image's own,
    except a stream-optimized VMDK (its compressed grains cannot be rewritten), which becomes VHDX."""
    with open_disk(path, expected, fs=fs) as reader:
        return DiskFormat.VHDX if reader.format is DiskFormat.VMDK_STREAM else reader.format
