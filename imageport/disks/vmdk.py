"""VMDK (VMware Virtual Disk Format 5.0 technote; qemu block/vmdk.c as cross-check).

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
copy) at -1024. ``StreamGrains`` decodes such a stream in one pass,
without seeking, which is what an NFC export download is.

A text *descriptor* (standalone, or embedded in a monolithicSparse file)
lists extents: ``RW <sectors> FLAT|VMFS|SPARSE|ZERO "file" [offset]``; split
disks (``-s001.vmdk``...) are several extents laid end to end.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import struct
import threading
import uuid
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from imageport.disks.base import (
    LOCAL,
    MAX_CHAIN_DEPTH,
    SECTOR,
    ByteSource,
    DiskReader,
    DiskWriter,
    Extent,
    FileSystem,
    KiB,
    Sink,
    block_runs,
    check_virtual_size,
    coalesce,
    is_zero,
    pack_array,
    unpack_array,
)
from imageport.errors import FormatError, InputError
from imageport.models import DiskFormat

MAGIC = b"KDMV"
HEADER = struct.Struct("<4sIIQQQQIQQQB4sH433s")
GD_AT_END = 0xFFFFFFFFFFFFFFFF
FLAG_NEWLINE, FLAG_RGD, FLAG_ZERO_GTE, FLAG_COMPRESSED, FLAG_MARKERS = 1, 2, 4, 1 << 16, 1 << 17
MARKER_EOS, MARKER_GT, MARKER_GD, MARKER_FOOTER = 0, 1, 2, 3
GRAIN_SECTORS = 128  # 64 KiB, what VMware and qemu use
GTES_PER_GT = 512
MAX_DESCRIPTOR = 64 * KiB
EXTENT_LINE = re.compile(
    r"^\s*(RW|RDONLY|NOACCESS)\s+(\d+)\s+(FLAT|SPARSE|ZERO|VMFS|VMFSSPARSE|VMFSRDM|VMFSRAW)"
    r'(?:\s+"([^"]*)"(?:\s+(\d+))?)?\s*$'
)


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


# --- extents of a descriptor -------------------------------------------------------------


class _Extent:
    """One extent of a VMDK: ``length`` virtual bytes starting at the disk's ``start``."""

    start = 0
    length = 0

    def allocated(self) -> Iterator[Extent]:
        raise NotImplementedError

    def read_into(self, offset: int, view: memoryview, below: Callable[[int, memoryview], None]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _ZeroExtent(_Extent):
    def allocated(self) -> Iterator[Extent]:
        return iter(())

    def read_into(self, offset: int, view: memoryview, below: Callable[[int, memoryview], None]) -> None:
        view[:] = bytes(len(view))


class _FlatExtent(_Extent):
    def __init__(self, source: ByteSource, base: int, length: int) -> None:
        self.file = source
        path = source.path
        self.base = base
        self.length = length
        if base + length > self.file.size:
            raise FormatError(
                path, "VMDK flat extent", base, f"extent needs {base + length} bytes, the file has {self.file.size}"
            )

    def allocated(self) -> Iterator[Extent]:
        for ext in self.file.data_extents(self.base, self.base + self.length):
            yield Extent(ext.offset - self.base, ext.length)

    def read_into(self, offset: int, view: memoryview, below: Callable[[int, memoryview], None]) -> None:
        self.file.preadv(view, self.base + offset)

    def close(self) -> None:
        self.file.close()


class _SparseExtent(_Extent):
    """A hosted sparse extent: monolithicSparse, a split -s00N file, or streamOptimized."""

    def __init__(self, source: ByteSource, header: SparseHeader | None = None) -> None:
        self.file = f = source
        self.path = path = source.path
        try:
            self.h = header or parse_header(path, f.read_exact(0, 512, "VMDK sparse header"), 0)
            self._load_directory()
        except BaseException:
            f.close()
            raise
        self.length = self.h.capacity * SECTOR
        self._gt_cache: dict[int, tuple[int, ...]] = {}
        self._grain_cache: tuple[int, bytes] | None = None
        self._lock = threading.Lock()

    def _load_directory(self) -> None:
        h, f = self.h, self.file
        if h.gd_offset == GD_AT_END and (f.size < 1536 or f.pread(f.size - 512, 512) != bytes(512)):
            # A stream always ends with an EOS marker; without it the copy was cut short,
            # even when the grain directory at the front still reads.
            raise FormatError(
                self.path,
                "VMDK end-of-stream marker",
                max(0, f.size - 512),
                "missing: the stream was cut short (interrupted download or copy?)",
            )
        if h.gd_offset == GD_AT_END:
            # streamOptimized: the footer (a header copy) before the EOS marker holds the real GD offset.
            if f.size < 1536:
                raise FormatError(self.path, "VMDK footer", None, "stream too short to hold a footer")
            footer = parse_header(self.path, f.read_exact(f.size - 1024, 512, "VMDK footer"), f.size - 1024)
            if footer.gd_offset == GD_AT_END:
                raise FormatError(self.path, "VMDK footer", f.size - 1024, "footer has no grain directory offset")
            self.h = h = footer
        self.grain_bytes = h.grain_size * SECTOR
        self.gt_span = h.gtes_per_gt * self.grain_bytes
        entries = -(-h.capacity * SECTOR // self.gt_span)
        self.gd = unpack_array(f.read_exact(h.gd_offset * SECTOR, entries * 4, "VMDK grain directory"), "I", "little")
        for i, gt in enumerate(self.gd):
            if gt and gt * SECTOR + h.gtes_per_gt * 4 > f.size:
                raise FormatError(
                    self.path,
                    "VMDK grain directory",
                    h.gd_offset * SECTOR + 4 * i,
                    f"entry {i} points to sector {gt}, past the end of the file",
                )

    def _gt(self, index: int) -> tuple[int, ...] | None:
        sector = self.gd[index]
        if sector == 0:
            return None
        table = self._gt_cache.get(index)
        if table is None:
            raw = self.file.read_exact(sector * SECTOR, self.h.gtes_per_gt * 4, "VMDK grain table")
            table = struct.unpack(f"<{self.h.gtes_per_gt}I", raw)
            if len(self._gt_cache) > 256:  # bounded: 256 tables x 2 KiB
                self._gt_cache.clear()
            self._gt_cache[index] = table
        return table

    def _grain_sector(self, grain: int) -> int:
        table = self._gt(grain // self.h.gtes_per_gt)
        return 0 if table is None else table[grain % self.h.gtes_per_gt]

    def allocated(self) -> Iterator[Extent]:
        # Walk only the grain tables that exist: a 64 TiB disk with little data has few of them.
        gb, per_gt = self.grain_bytes, self.h.gtes_per_gt
        zero_gte = 1 if self.h.flags & FLAG_ZERO_GTE else -1
        for gt_index, gt_sector in enumerate(self.gd):
            if not gt_sector:
                continue
            table = self._gt(gt_index) or ()
            for j, sector in enumerate(table):
                g = gt_index * per_gt + j
                if sector and sector != zero_gte and g * gb < self.length:
                    yield Extent(g * gb, min(gb, self.length - g * gb))

    def read_into(self, offset: int, view: memoryview, below: Callable[[int, memoryview], None]) -> None:
        zero_gte = 1 if self.h.flags & FLAG_ZERO_GTE else -1
        for grain, inner, pos, n in block_runs(offset, len(view), self.grain_bytes):
            part = view[pos : pos + n]
            sector = self._grain_sector(grain)
            if sector == 0:
                below(offset + pos, part)
            elif sector == zero_gte:
                part[:] = bytes(n)
            elif self.h.compressed:
                data = self._compressed_grain(grain, sector)
                part[:] = data[inner : inner + n]
            else:
                if sector * SECTOR + inner + n > self.file.size:
                    raise FormatError(
                        self.path,
                        "VMDK grain table",
                        None,
                        f"grain {grain} at sector {sector} lies past the end of the file",
                    )
                self.file.preadv(part, sector * SECTOR + inner)

    def _compressed_grain(self, grain: int, sector: int) -> bytes:
        with self._lock:
            cached = self._grain_cache
        if cached and cached[0] == grain:
            return cached[1]
        gb = self.grain_bytes
        marker = self.file.read_exact(sector * SECTOR, 12, "VMDK grain marker")
        lba, size = struct.unpack("<QI", marker)
        if lba != grain * self.h.grain_size or size == 0 or size > 2 * gb:
            raise FormatError(
                self.path,
                "VMDK grain marker",
                sector * SECTOR,
                f"marker says lba {lba}, size {size}; grain table expects lba {grain * self.h.grain_size}",
            )
        data = inflate_grain(
            self.path, self.file.read_exact(sector * SECTOR + 12, size, "VMDK grain"), sector * SECTOR, gb
        )
        data = data.ljust(gb, b"\0")
        with self._lock:
            self._grain_cache = (grain, data)
        return data

    def close(self) -> None:
        self.file.close()


def inflate_grain(path: str, data: bytes, offset: int, grain_bytes: int) -> bytes:
    try:
        d = zlib.decompressobj()
        out = d.decompress(data, grain_bytes + 1)
    except zlib.error as exc:
        raise FormatError(path, "VMDK compressed grain", offset, f"does not inflate: {exc}") from None
    if len(out) > grain_bytes:
        raise FormatError(path, "VMDK compressed grain", offset, f"inflates past the {grain_bytes}-byte grain")
    return out


# --- the reader ---------------------------------------------------------------------------


# What VMware and qemu write; anything else in createType is damage (or a format we do not read).
CREATE_TYPES = frozenset(
    {
        "monolithicSparse",
        "monolithicFlat",
        "twoGbMaxExtentSparse",
        "twoGbMaxExtentFlat",
        "streamOptimized",
        "vmfs",
        "vmfsThin",
        "vmfsPreallocated",
        "vmfsEagerZeroedThick",
        "vmfsRaw",
        "vmfsRDM",
        "vmfsPassthroughRawDeviceMap",
        "vmfsSparse",
        "seSparse",
        "custom",
    }
)
KEY = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")
CID = re.compile(r"^[0-9a-fA-F]{1,8}$")


def descriptor_area_text(path: str, raw: bytes, offset: int) -> str:
    """The text of a descriptor area: up to its first NUL, as qemu reads it.

    What follows that NUL is ignored when the text before it ends a line: qemu rewrites the
    descriptor in place when it updates the CID (a random hex number of varying length) and leaves
    the tail of the longer earlier text behind its NUL. A NUL in the middle of a line is damage.
    """
    text, _, rest = raw.partition(b"\0")
    if rest.strip(b"\0") and not text.endswith(b"\n"):
        raise FormatError(path, "VMDK descriptor", offset + len(text), "a NUL byte inside a line: damaged")
    return text.decode("utf-8", errors="replace")


def parse_descriptor(path: str, text: str) -> dict[str, Any]:
    """Fields and extents of a descriptor. Strict: every line is a comment, an extent or ``key = value``,
    CID/parentCID are hex and createType is a known one -- a damaged descriptor is refused, not guessed at."""
    fields: dict[str, str] = {}
    extents: list[tuple[str, int, str, str | None, int]] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = EXTENT_LINE.match(stripped)
        if m:
            access, sectors, kind, name, off = m.groups()
            extents.append((access, int(sectors), kind, name, int(off or 0)))
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not KEY.match(key.strip()):
            raise FormatError(
                path, "VMDK descriptor", None, f"line {number} is not a comment, an extent or key=value: {line[:60]!r}"
            )
        fields[key.strip()] = value.strip().strip('"')
    if not extents:
        raise FormatError(path, "VMDK descriptor", None, "lists no extents")
    for key in ("CID", "parentCID"):
        if not CID.match(fields.get(key, "")):
            raise FormatError(path, "VMDK descriptor", None, f"{key} {fields.get(key)!r} is missing or not hex")
    if fields.get("createType") not in CREATE_TYPES:
        raise FormatError(path, "VMDK descriptor", None, f"createType {fields.get('createType')!r} is unknown")
    return {"fields": fields, "extents": extents}


class VmdkReader(DiskReader):
    format = DiskFormat.VMDK_SPARSE

    def __init__(self, path: str, fs: FileSystem = LOCAL, _seen: tuple[str, ...] = ()) -> None:
        super().__init__(path)
        self.fs = fs
        self._parts: list[_Extent] = []
        self._descriptor_stamp: dict[str, int | str] | None = None  # a separate descriptor file's
        try:
            self._open(_seen)
        except BaseException:
            self.close()
            raise

    def _open(self, seen: tuple[str, ...]) -> None:
        source = self.fs.open(self.path)
        head = source.pread(0, 512)
        if head[:4] == MAGIC:
            first = _SparseExtent(source)
            self._parts.append(first)
            h = first.h
            if h.descriptor_offset and h.descriptor_size:
                raw = first.file.read_exact(
                    h.descriptor_offset * SECTOR,
                    min(h.descriptor_size * SECTOR, MAX_DESCRIPTOR),
                    "VMDK embedded descriptor",
                )
                desc = parse_descriptor(self.path, descriptor_area_text(self.path, raw, h.descriptor_offset * SECTOR))
            else:
                desc = {
                    "fields": {"createType": "streamOptimized" if h.compressed else "monolithicSparse"},
                    "extents": [("RW", h.capacity, "SPARSE", None, 0)],
                }
            self.descriptor = desc
            self._layout(desc, own=first)
        else:
            size = source.size
            text_bytes = source.pread(0, min(size, MAX_DESCRIPTOR))
            self._descriptor_stamp = source.stamp()
            source.close()
            if size > MAX_DESCRIPTOR or not (head.lstrip().startswith(b"#") or b"createType" in head):
                raise FormatError(
                    self.path,
                    "VMDK sparse header",
                    0,
                    f"magic is {head[:4]!r}, expected b'KDMV', and the file is not a text descriptor",
                )
            self.descriptor = parse_descriptor(self.path, descriptor_area_text(self.path, text_bytes, 0))
            self._layout(self.descriptor, own=None)
        fields = self.descriptor["fields"]
        self.create_type = fields.get("createType", "")
        self.subformat = self.create_type
        if self.create_type == "streamOptimized":
            self.format = DiskFormat.VMDK_STREAM
        parent_cid = fields.get("parentCID", "ffffffff").lower()
        if parent_cid != "ffffffff":
            self.parent = self._open_parent(fields.get("parentFileNameHint", ""), seen)

    def _layout(self, desc: dict[str, Any], own: _SparseExtent | None) -> None:
        fs = self.fs
        base = fs.dirname(self.path)
        start = 0
        for i, (_access, sectors, kind, name, off) in enumerate(desc["extents"]):
            length = sectors * SECTOR
            extent_path = fs.join(base, name or "")
            if kind != "ZERO" and not (own is not None and i == 0) and not (name and fs.isfile(extent_path)):
                raise FormatError(self.path, "VMDK descriptor", None, f"extent {i} file {name!r} not found")
            if kind == "ZERO":
                part: _Extent = _ZeroExtent()
            elif kind in ("FLAT", "VMFS", "VMFSRAW", "VMFSRDM"):
                part = _FlatExtent(fs.open(extent_path), off * SECTOR, length)
                self._parts.append(part)
            elif own is not None and i == 0:
                part = own
            else:
                part = _SparseExtent(fs.open(extent_path))
                self._parts.append(part)
            if isinstance(part, _SparseExtent) and part.length < length:
                raise FormatError(
                    self.path,
                    "VMDK descriptor",
                    None,
                    f"extent {i} claims {length} bytes, its file holds {part.length}",
                )
            part.start, part.length = start, length
            if kind == "ZERO":
                self._parts.append(part)
            start += length
        self._extents_by_start = sorted((p for p in self._parts), key=lambda p: p.start)
        self.virtual_size = check_virtual_size(self.path, "VMDK descriptor", None, start)

    def _open_parent(self, hint: str, seen: tuple[str, ...]) -> DiskReader:
        fs = self.fs
        seen = (*seen, fs.realpath(self.path))
        if len(seen) > MAX_CHAIN_DEPTH:
            raise FormatError(self.path, "VMDK parent chain", None, f"longer than {MAX_CHAIN_DEPTH} disks")
        # A hint is relative to the child's folder; an absolute one (a datastore path) by its name.
        candidate = fs.join(fs.dirname(self.path), posixpath.basename(hint.replace("\\", "/"))) if hint else ""
        if not candidate or not fs.isfile(candidate):
            raise FormatError(self.path, "VMDK parentFileNameHint", None, f"parent {hint!r} not found")
        if fs.realpath(candidate) in seen:
            raise FormatError(self.path, "VMDK parent chain", None, f"loops back to {candidate}")
        parent = VmdkReader(candidate, fs, _seen=seen)
        if parent.virtual_size != self.virtual_size:
            parent.close()
            raise FormatError(self.path, "VMDK parent", None, f"{candidate} has a different size")
        return parent

    def _below(self, offset: int, view: memoryview) -> None:
        if self.parent is None:
            view[:] = bytes(len(view))
        else:
            self.parent.readinto(offset, view)

    def extents(self) -> Iterator[Extent]:
        own = coalesce(
            Extent(part.start + e.offset, e.length) for part in self._extents_by_start for e in part.allocated()
        )
        if self.parent is None:
            return own
        from heapq import merge

        return coalesce(merge(own, self.parent.extents(), key=lambda e: e.offset))

    def _read_into(self, offset: int, view: memoryview) -> None:
        pos = 0
        for part in self._extents_by_start:
            if pos >= len(view):
                break
            voff = offset + pos
            if voff >= part.start + part.length or voff < part.start:
                continue
            n = min(part.start + part.length - voff, len(view) - pos)
            start = part.start
            part.read_into(voff - start, view[pos : pos + n], lambda o, v, s=start: self._below(s + o, v))
            pos += n

    def details(self) -> dict[str, Any]:
        return {
            "create_type": self.create_type,
            "extents": len(self.descriptor["extents"]),
            "parent": self.parent.path if self.parent else None,
        }

    def stamps(self) -> list[dict[str, int | str]]:
        files = [p.file.stamp() for p in self._parts if isinstance(p, _FlatExtent | _SparseExtent)]
        return [self._descriptor_stamp, *files] if self._descriptor_stamp is not None else files

    def change_markers(self) -> dict[str, str]:
        fields = self.descriptor["fields"]
        return {"vmdk_cid": fields.get("CID", "").lower(), "vmdk_parent_cid": fields.get("parentCID", "").lower()}

    def metadata(self) -> Iterator[bytes]:
        yield json.dumps(self.descriptor, sort_keys=True, default=str).encode()
        for part in self._parts:
            if isinstance(part, _SparseExtent):
                yield repr(part.h).encode()
                yield part.gd.tobytes()

    def close(self) -> None:
        for part in self._parts:
            part.close()
        super().close()


# --- one-pass stream decoding ----------------------------------------------------------


def _read_full(stream: BinaryIO, n: int, name: str, offset: int) -> bytes:
    data = _read_upto(stream, n)
    if len(data) < n:
        raise FormatError(name, "VMDK stream", offset + len(data), "ended in the middle of a record: cut short")
    return data


class StreamGrains:
    """Decode a streamOptimized VMDK read front to back; iterate for (virtual offset, grain data).

    The header is read at construction (so ``capacity`` is known before the
    first grain); grains arrive as markers; metadata (grain tables, directory,
    footer) is skipped; EOS ends it. Memory: one grain. No seeking.
    """

    def __init__(self, stream: BinaryIO, name: str = "<stream>") -> None:
        self.stream = stream
        self.name = name
        self.header = parse_header(name, _read_full(stream, 512, name, 0), 0)
        if not self.header.compressed or not self.header.flags & FLAG_MARKERS:
            raise FormatError(name, "VMDK sparse header", 8, "not a streamOptimized VMDK (no compressed markers)")
        self.capacity = self.header.capacity * SECTOR

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        stream, name, header = self.stream, self.name, self.header
        pos = 512
        skip = header.overhead * SECTOR - pos
        if skip < 0 or skip > 64 * 1024 * 1024:
            raise FormatError(name, "VMDK sparse header", 0x40, f"overhead {header.overhead} sectors is absurd")
        front = _read_full(stream, skip, name, pos)
        expected = self._grains_listed_in_front(front)
        pos += skip
        grain_bytes = header.grain_size * SECTOR
        last_end = 0
        received = 0
        while True:
            marker = _read_upto(stream, SECTOR)
            if not marker:
                # VMware streams end with EOS. qemu's end after the last grain, but list their
                # grains in a directory at the front: accept that end only if every grain came.
                if expected is not None and received == expected:
                    return
                got = f" after {received} of {expected} grains" if expected is not None else ""
                raise FormatError(name, "VMDK stream", pos, f"ended without an end-of-stream marker{got}: cut short")
            if len(marker) < SECTOR:
                raise FormatError(name, "VMDK stream", pos, "ended in the middle of a marker: cut short")
            value, size = struct.unpack_from("<QI", marker)
            if size:
                if size > 2 * grain_bytes:
                    raise FormatError(name, "VMDK grain marker", pos, f"compressed size {size} is absurd")
                total = -(-(12 + size) // SECTOR) * SECTOR
                rest = _read_full(stream, total - SECTOR, name, pos + SECTOR) if total > SECTOR else b""
                data = inflate_grain(name, (marker[12:] + rest)[:size], pos, grain_bytes)
                offset = value * SECTOR
                if offset < last_end or offset >= self.capacity:
                    raise FormatError(name, "VMDK grain marker", pos, f"lba {value} is out of order or past the end")
                data = data[: self.capacity - offset]
                last_end = offset + len(data)
                received += 1
                yield offset, data
                pos += total
                continue
            kind = struct.unpack_from("<I", marker, 12)[0]
            if kind == MARKER_EOS:
                return
            if kind not in (MARKER_GT, MARKER_GD, MARKER_FOOTER) or value > 1 << 24:
                raise FormatError(name, "VMDK metadata marker", pos, f"type {kind} with {value} sectors is unknown")
            _read_full(stream, value * SECTOR, name, pos + SECTOR)
            pos += SECTOR + value * SECTOR

    def _grains_listed_in_front(self, front: bytes) -> int | None:
        """Grains a directory in the header area says to expect; None when it is not there (VMware layout)."""
        h = self.header
        if h.gd_offset == GD_AT_END:
            return None
        base = 512  # ``front`` starts at byte 512 of the stream
        gt_span = h.gtes_per_gt * h.grain_size * SECTOR
        entries = -(-self.capacity // gt_span)
        gd_at = h.gd_offset * SECTOR - base
        if gd_at < 0 or gd_at + 4 * entries > len(front):
            return None
        zero_gte = 1 if h.flags & FLAG_ZERO_GTE else -1
        count = 0
        for gt_sector in struct.unpack_from(f"<{entries}I", front, gd_at):
            if not gt_sector:
                continue
            gt_at = gt_sector * SECTOR - base
            if gt_at < 0 or gt_at + 4 * h.gtes_per_gt > len(front):
                return None
            count += sum(1 for e in struct.unpack_from(f"<{h.gtes_per_gt}I", front, gt_at) if e and e != zero_gte)
        return count


def _read_upto(stream: BinaryIO, n: int) -> bytes:
    """Up to n bytes; fewer only at the end of the stream."""
    chunks = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# --- writers -------------------------------------------------------------------------------


def descriptor_text(create_type: str, sectors: int, extent_line: str, cid: int | None = None) -> str:
    cid = cid if cid is not None else uuid.uuid4().int & 0xFFFFFFFF
    total = sectors
    heads, spt = 255, 63
    cylinders = min(65535, max(1, total // (heads * spt)))
    return (
        "# Disk DescriptorFile\n"
        "version=1\n"
        f"CID={cid:08x}\n"
        "parentCID=ffffffff\n"
        f'createType="{create_type}"\n\n'
        "# Extent description\n"
        f"{extent_line}\n\n"
        "# The Disk Data Base\n#DDB\n\n"
        'ddb.virtualHWVersion = "4"\n'
        f'ddb.geometry.cylinders = "{cylinders}"\n'
        f'ddb.geometry.heads = "{heads}"\n'
        f'ddb.geometry.sectors = "{spt}"\n'
        'ddb.adapterType = "lsilogic"\n'
    )


class _GrainBuffer:
    """Collects ascending writes into whole grains (64 KiB), handing each finished grain on."""

    def __init__(self, grain_bytes: int, emit: Callable[[int, bytes], None]) -> None:
        self.grain_bytes = grain_bytes
        self.emit = emit
        self.index = -1
        self.buf = bytearray(grain_bytes)

    def write(self, offset: int, data: memoryview) -> None:
        for grain, inner, pos, n in block_runs(offset, len(data), self.grain_bytes):
            if grain != self.index:
                self.flush()
                self.index = grain
            self.buf[inner : inner + n] = data[pos : pos + n]

    def flush(self) -> None:
        if self.index >= 0:
            grain = bytes(self.buf)
            if not is_zero(grain):
                self.emit(self.index, grain)
            self.buf[:] = bytes(self.grain_bytes)
            self.index = -1


class StreamOptimizedVmdkWriter(DiskWriter):
    """streamOptimized VMDK (what vSphere imports and NFC exports): header, descriptor,
    compressed grain markers, a GT after each 32 MiB region with data, GD, footer, EOS.

    Deflate runs on a thread pool (zlib releases the GIL) over batches of grains;
    results are written strictly in order, with a bounded number of batches in flight.
    """

    format = DiskFormat.VMDK_STREAM

    def __init__(
        self, sink: Sink, virtual_size: int, level: int = 6, threads: int | None = None, extent_name: str | None = None
    ) -> None:
        if virtual_size % SECTOR:
            raise InputError(f"{sink.name}: size {virtual_size} is not a multiple of 512")
        super().__init__(sink, virtual_size)
        self.level = level
        sectors = virtual_size // SECTOR
        name = extent_name or Path(sink.name).name
        desc = descriptor_text("streamOptimized", sectors, f'RW {sectors} SPARSE "{name}"').encode()
        desc_sectors = -(-len(desc) // SECTOR)
        self.h = SparseHeader(
            3,
            FLAG_NEWLINE | FLAG_COMPRESSED | FLAG_MARKERS,
            sectors,
            GRAIN_SECTORS,
            1,
            desc_sectors,
            GTES_PER_GT,
            0,
            GD_AT_END,
            GRAIN_SECTORS,
            1,
        )
        self.grain_bytes = GRAIN_SECTORS * SECTOR
        self.gd = [0] * -(-sectors // (GRAIN_SECTORS * GTES_PER_GT))
        self.gt: list[int] = []
        self.gt_index = -1
        sink.pwrite(0, build_header(self.h))
        sink.pwrite(SECTOR, desc.ljust(desc_sectors * SECTOR, b"\0"))
        self.pos = GRAIN_SECTORS * SECTOR
        self.pool = ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 2, thread_name_prefix="deflate")
        self.window: deque[Future[list[tuple[int, bytes]]]] = deque()
        self.max_in_flight = 4 * (threads or os.cpu_count() or 2)
        self.batch: list[tuple[int, bytes]] = []
        self.grains = _GrainBuffer(self.grain_bytes, self._queue)

    def _queue(self, index: int, grain: bytes) -> None:
        self.batch.append((index, grain))
        if len(self.batch) >= 16:
            self._submit()

    def _submit(self) -> None:
        if self.batch:
            batch, self.batch = self.batch, []
            self.window.append(self.pool.submit(self._compress, batch))
            while len(self.window) > self.max_in_flight:
                self._emit(self.window.popleft().result())

    def _compress(self, batch: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        return [(index, zlib.compress(grain, self.level)) for index, grain in batch]

    def _emit(self, compressed: list[tuple[int, bytes]]) -> None:
        for index, data in compressed:
            gt_index = index // GTES_PER_GT
            if gt_index != self.gt_index:
                self._close_gt()
                self.gt_index = gt_index
                self.gt = [0] * GTES_PER_GT
            record = struct.pack("<QI", index * GRAIN_SECTORS, len(data)) + data
            padded = -(-len(record) // SECTOR) * SECTOR
            self.gt[index % GTES_PER_GT] = self.pos // SECTOR
            self.sink.pwrite(self.pos, record + bytes(padded - len(record)))
            self.pos += padded

    def _metadata(self, kind: int, payload: bytes) -> int:
        sectors = len(payload) // SECTOR
        self.sink.pwrite(self.pos, struct.pack("<QII", sectors, 0, kind).ljust(SECTOR, b"\0"))
        start = self.pos // SECTOR + 1
        self.sink.pwrite(self.pos + SECTOR, payload)
        self.pos += SECTOR + len(payload)
        return start

    def _close_gt(self) -> None:
        if self.gt_index >= 0:
            self.gd[self.gt_index] = self._metadata(MARKER_GT, struct.pack(f"<{GTES_PER_GT}I", *self.gt))
            self.gt_index = -1

    def _write(self, offset: int, data: memoryview) -> None:
        self.grains.write(offset, data)

    def _finish(self) -> None:
        try:
            self.grains.flush()
            self._submit()
            while self.window:
                self._emit(self.window.popleft().result())
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self._close_gt()
        gd_bytes = struct.pack(f"<{len(self.gd)}I", *self.gd)
        gd_sector = self._metadata(MARKER_GD, gd_bytes.ljust(-(-len(gd_bytes) // SECTOR) * SECTOR, b"\0"))
        footer = SparseHeader(**{**self.h.__dict__, "gd_offset": gd_sector})
        self._metadata(MARKER_FOOTER, build_header(footer))
        self.sink.pwrite(self.pos, bytes(SECTOR))  # EOS
        self.pos += SECTOR
        self.sink.truncate(self.pos)

    def abort(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        super().abort()


class MonolithicSparseVmdkWriter(DiskWriter):
    """monolithicSparse VMDK: header, embedded descriptor, redundant and primary GD/GTs
    preallocated, then 64 KiB grains appended as data arrives.

    Writes arrive in ascending order, so each grain table is complete once a write
    moves past its 32 MiB span: it is written out then (to both GT copies) and only
    the current one is kept in memory, whatever the disk size. Tables never touched
    stay holes in the file, which read as empty tables.
    """

    format = DiskFormat.VMDK_SPARSE

    def __init__(self, sink: Sink, virtual_size: int, extent_name: str | None = None) -> None:
        if virtual_size % SECTOR:
            raise InputError(f"{sink.name}: size {virtual_size} is not a multiple of 512")
        super().__init__(sink, virtual_size)
        sectors = virtual_size // SECTOR
        self.grain_bytes = GRAIN_SECTORS * SECTOR
        self.num_gts = -(-sectors // (GRAIN_SECTORS * GTES_PER_GT))
        gd_sectors = -(-self.num_gts * 4 // SECTOR)
        self.gt_sectors = GTES_PER_GT * 4 // SECTOR
        desc_offset, desc_sectors = 1, 20
        self.rgd = desc_offset + desc_sectors
        self.rgt = self.rgd + gd_sectors
        self.gd_sector = self.rgt + self.num_gts * self.gt_sectors
        self.gt0 = self.gd_sector + gd_sectors
        overhead = -(-(self.gt0 + self.num_gts * self.gt_sectors) // GRAIN_SECTORS) * GRAIN_SECTORS
        self.h = SparseHeader(
            1,
            FLAG_NEWLINE | FLAG_RGD,
            sectors,
            GRAIN_SECTORS,
            desc_offset,
            desc_sectors,
            GTES_PER_GT,
            self.rgd,
            self.gd_sector,
            overhead,
            0,
        )
        name = extent_name or Path(sink.name).name
        self.desc = descriptor_text("monolithicSparse", sectors, f'RW {sectors} SPARSE "{name}"').encode()
        self.gt_index = -1
        self.gt = array("I", [0]) * GTES_PER_GT
        self.next_free = overhead * SECTOR

    def _flush_gt(self) -> None:
        if self.gt_index >= 0:
            table = pack_array(self.gt, "little")
            for base in (self.rgt, self.gt0):
                self.sink.pwrite((base + self.gt_index * self.gt_sectors) * SECTOR, table)
        self.gt = array("I", [0]) * GTES_PER_GT

    def _write(self, offset: int, data: memoryview) -> None:
        for grain, inner, pos, n in block_runs(offset, len(data), self.grain_bytes):
            gt_index, slot = divmod(grain, GTES_PER_GT)
            if gt_index != self.gt_index:
                self._flush_gt()
                self.gt_index = gt_index
            if not self.gt[slot]:
                self.gt[slot] = self.next_free // SECTOR
                self.next_free += self.grain_bytes
            self.sink.pwrite(self.gt[slot] * SECTOR + inner, data[pos : pos + n])

    def _finish(self) -> None:
        sink = self.sink
        self._flush_gt()
        sink.truncate(self.next_free)
        sink.pwrite(0, build_header(self.h))
        sink.pwrite(SECTOR, self.desc.ljust(20 * SECTOR, b"\0"))
        for gd_start, gt_start in ((self.rgd, self.rgt), (self.gd_sector, self.gt0)):
            # Grain directories are 4 bytes per 32 MiB: written in slices to stay small.
            for first in range(0, self.num_gts, 65536):
                count = min(65536, self.num_gts - first)
                gd = array(
                    "I",
                    range(
                        gt_start + first * self.gt_sectors,
                        gt_start + (first + count) * self.gt_sectors,
                        self.gt_sectors,
                    ),
                )
                raw = pack_array(gd, "little")
                sink.pwrite(gd_start * SECTOR + first * 4, raw)
