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
"""

from __future__ import annotations

import posixpath
import struct
import time
import uuid
from array import array
from collections.abc import Iterator
from pathlib import PureWindowsPath
from typing import Any

from imageport.disks.extents import (
    MAX_CHAIN_DEPTH,
    SECTOR,
    Extent,
    MiB,
    TiB,
    block_runs,
    check_virtual_size,
    coalesce,
    pack_array,
    unpack_array,
)
from imageport.disks.formats import BlockMappedReader, DiskReader, DiskWriter, FileReader
from imageport.disks.io import FileSystem, Sink
from imageport.disks.local_files import LOCAL
from imageport.errors import FormatError
from imageport.models import DiskFormat

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


class VhdFixedReader(FileReader):
    """A fixed VHD: raw data followed by a footer. Holes in the file are its allocation map."""

    format = DiskFormat.VHD
    subformat = "fixed"

    def __init__(self, path: str, footer: dict[str, Any], fs: FileSystem = LOCAL) -> None:
        super().__init__(path, fs)
        self.footer = footer
        size = footer["current_size"]
        if size > self.file.size - 512:
            raise FormatError(
                path,
                "VHD footer",
                self.file.size - 512,
                f"current size {size} is larger than the data in the file ({self.file.size - 512})",
            )
        self.virtual_size = check_virtual_size(path, "VHD footer", self.file.size - 512, size)

    def extents(self) -> Iterator[Extent]:
        return self.file.data_extents(0, self.virtual_size)

    def _read_into(self, offset: int, view: memoryview) -> None:
        self.file.preadv(view, offset)

    def details(self) -> dict[str, Any]:
        return {"creator": self.footer["creator"], "geometry": self.footer["geometry"]}

    def change_markers(self) -> dict[str, str]:
        return footer_markers(self.footer)


class VhdDynamicReader(BlockMappedReader):
    """Dynamic and differencing VHDs through their BAT (and sector bitmaps for differencing)."""

    format = DiskFormat.VHD_DYNAMIC

    def __init__(self, path: str, footer: dict[str, Any], fs: FileSystem = LOCAL, _seen: tuple[str, ...] = ()) -> None:
        super().__init__(path, fs)
        self.footer = footer
        self.subformat = "differencing" if footer["disk_type"] == DIFFERENCING else "dynamic"
        f = self.file
        hdr_off = footer["data_offset"]
        raw = f.read_exact(hdr_off, 1024, "VHD dynamic header")
        (cookie, _d, bat_off, _ver, entries, block_size, csum, parent_uuid, _pts, _r, parent_name, locators, _r2) = (
            DYN_HEADER.unpack(raw)
        )
        if cookie != DYN_COOKIE:
            raise FormatError(path, "VHD dynamic header", hdr_off, f"cookie is {cookie!r}, expected b'cxsparse'")
        if checksum(raw, 36) != csum:
            raise FormatError(path, "VHD dynamic header", hdr_off, "checksum does not match its contents")
        if block_size < SECTOR or block_size & (block_size - 1) or block_size > 256 * MiB:
            raise FormatError(path, "VHD dynamic header", hdr_off, f"block size {block_size} is not a power of two")
        size = check_virtual_size(path, "VHD footer", f.size - 512, footer["current_size"])
        if entries < -(-size // block_size) or entries > (MAX_DYNAMIC_SIZE * 2) // block_size:
            raise FormatError(
                path,
                "VHD dynamic header",
                hdr_off + 28,
                f"{entries} BAT entries cannot describe a {size}-byte disk in {block_size}-byte blocks",
            )
        self.virtual_size = size
        self.block_size = block_size
        self.bitmap_size = -(-(block_size // SECTOR // 8) // SECTOR) * SECTOR
        # array, not a tuple of ints: 4 bytes per entry whatever the disk size
        self.bat = unpack_array(f.read_exact(bat_off, entries * 4, "VHD BAT"), "I", "big")
        limit = f.size - 512  # the trailing footer
        for i, entry in enumerate(self.bat):
            if (
                entry != UNALLOCATED
                and entry * SECTOR + self.bitmap_size + min(block_size, max(0, size - i * block_size)) > limit
            ):
                raise FormatError(
                    path, "VHD BAT", bat_off + 4 * i, f"entry {i} points to sector {entry}, past the end of the file"
                )
        if self.subformat == "differencing":
            self.parent = self._open_parent(parent_uuid, parent_name, locators, _seen)
            if self.parent.virtual_size != size:
                raise FormatError(
                    path,
                    "VHD parent",
                    None,
                    f"parent {self.parent.path} has size {self.parent.virtual_size}, this disk {size}",
                )

    # --- differencing ---------------------------------------------------------

    def _open_parent(self, parent_uuid: bytes, name: bytes, locators: bytes, seen: tuple[str, ...]) -> DiskReader:
        fs = self.fs
        seen = (*seen, fs.realpath(self.path))
        if len(seen) > MAX_CHAIN_DEPTH:
            raise FormatError(self.path, "VHD parent chain", None, f"longer than {MAX_CHAIN_DEPTH} disks")
        candidates = self._parent_candidates(name, locators)
        for candidate in candidates:
            if fs.realpath(candidate) in seen:
                raise FormatError(self.path, "VHD parent chain", None, f"loops back to {candidate}")
            if fs.isfile(candidate):
                parent = open_vhd(candidate, fs, _seen=seen)
                footer = getattr(parent, "footer", {})
                if footer.get("unique_id") != uuid.UUID(bytes=parent_uuid):
                    parent.close()
                    raise FormatError(
                        self.path,
                        "VHD parent locator",
                        None,
                        f"{candidate} is not this disk's parent (unique id differs)",
                    )
                return parent
        tried = ", ".join(candidates) or "no locator"
        raise FormatError(self.path, "VHD parent locator", None, f"parent not found (tried {tried})")

    def _parent_candidates(self, name: bytes, locators: bytes) -> list[str]:
        base = self.fs.dirname(self.path)
        found: list[str] = []
        for i in range(8):
            code, _space, length, _r, data_off = LOCATOR.unpack_from(locators, i * 24)
            if code == b"\0\0\0\0" or length == 0 or length > 65536:
                continue
            raw = self.file.read_exact(data_off, length, f"VHD parent locator {i}")
            if code in (b"W2ru", b"W2ku"):
                text = raw.decode("utf-16-le", errors="replace").rstrip("\0")
                win = PureWindowsPath(text)
                relative = "/".join(p for p in win.parts if p not in (".", "\\")) if code == b"W2ru" else win.name
                found.append(self.fs.join(base, relative))
            elif code == b"MacX":
                text = raw.decode("utf-8", errors="replace").rstrip("\0").removeprefix("file://")
                found.append(self.fs.join(base, posixpath.basename(text)))
        unicode_name = name.decode("utf-16-be", errors="replace").rstrip("\0")
        if unicode_name:
            found.append(self.fs.join(base, PureWindowsPath(unicode_name).name))
        return list(dict.fromkeys(found))

    # --- reading --------------------------------------------------------------------

    def own_extents(self) -> Iterator[Extent]:
        bs = self.block_size
        return coalesce(
            Extent(i * bs, min(bs, self.virtual_size - i * bs))
            for i, entry in enumerate(self.bat)
            if entry != UNALLOCATED and i * bs < self.virtual_size
        )

    def _read_block(self, block: int, inner: int, voff: int, part: memoryview) -> None:
        entry = self.bat[block]
        if entry == UNALLOCATED:
            self._read_below(voff, part)
        elif self.parent is None:
            self.file.preadv(part, entry * SECTOR + self.bitmap_size + inner)
        else:
            self._read_differencing(entry, voff, inner, part)

    def _read_differencing(self, entry: int, voff: int, inner: int, part: memoryview) -> None:
        bitmap = self.file.pread(entry * SECTOR, self.bitmap_size)
        data_base = entry * SECTOR + self.bitmap_size
        pos = 0
        while pos < len(part):
            sector = (inner + pos) // SECTOR
            present = bool(bitmap[sector >> 3] & (0x80 >> (sector & 7)))
            # extend the run while sectors keep the same presence
            run_end = (sector + 1) * SECTOR - inner
            while run_end < len(part):
                s = (inner + run_end) // SECTOR
                if bool(bitmap[s >> 3] & (0x80 >> (s & 7))) != present:
                    break
                run_end += SECTOR
            run = part[pos : min(run_end, len(part))]
            if present:
                self.file.preadv(run, data_base + inner + pos)
            else:
                self._read_below(voff + pos, run)
            pos += len(run)

    def details(self) -> dict[str, Any]:
        return {
            "creator": self.footer["creator"],
            "block_size": self.block_size,
            "parent": self.parent.path if self.parent else None,
        }

    def change_markers(self) -> dict[str, str]:
        return footer_markers(self.footer)

    def metadata(self) -> Iterator[bytes]:
        yield self.bat.tobytes()


def footer_markers(footer: dict[str, Any]) -> dict[str, str]:
    """A VHD's change markers: the footer's timestamp, checksum and unique id."""
    return {
        "vhd_timestamp": str(footer["timestamp"]),
        "vhd_checksum": f"{footer['checksum']:08x}",
        "vhd_unique_id": str(footer["unique_id"]),
    }


def open_vhd(path: str, fs: FileSystem = LOCAL, _seen: tuple[str, ...] = ()) -> DiskReader:
    source = fs.open(path)
    try:
        size = source.size
        if size < 512:
            raise FormatError(path, "VHD footer", 0, f"file is {size} bytes, too small for a VHD")
        tail = source.pread(size - 512, 512)
        head = source.pread(0, 512)
    finally:
        source.close()
    if not is_vhd_footer(tail):
        where = "the copy at offset 0 is there" if is_vhd_footer(head) else "no footer copy at offset 0 either"
        raise FormatError(
            path, "VHD footer", size - 512, f"missing at the end of the file ({where}): truncated or damaged"
        )
    footer = parse_footer(path, tail, size - 512)
    if footer["disk_type"] == FIXED:
        return VhdFixedReader(path, footer, fs)
    # qemu and Hyper-V read the copy at offset 0, we the one at the end: both must say the same.
    if head != tail:
        raise FormatError(
            path, "VHD footer", 0, "the copy at offset 0 is missing or differs from the footer at the end: damaged"
        )
    return VhdDynamicReader(path, footer, fs, _seen)


# --- writers ---------------------------------------------------------------------------


class VhdFixedWriter(DiskWriter):
    """Fixed VHD: the data in place (holes stay holes), then the footer at ``virtual_size``."""

    format = DiskFormat.VHD

    def __init__(self, sink: Sink, virtual_size: int) -> None:
        if virtual_size % SECTOR or virtual_size > MAX_FIXED_SIZE:
            raise FormatError(sink.name, "VHD footer", None, f"size {virtual_size} must be a multiple of 512, ≤ 32 TiB")
        super().__init__(sink, virtual_size)
        sink.truncate(virtual_size + 512)

    def footer(self) -> bytes:
        return build_footer(self.virtual_size, FIXED, ALL_ONES, uuid.uuid4().bytes)

    def _write(self, offset: int, data: memoryview) -> None:
        self.sink.pwrite(offset, data)

    def _finish(self) -> None:
        self.sink.pwrite(self.virtual_size, self.footer())


class VhdDynamicWriter(DiskWriter):
    """Dynamic VHD, qemu's layout: footer copy, header at 512, BAT at 1536, blocks, footer."""

    format = DiskFormat.VHD_DYNAMIC

    def __init__(self, sink: Sink, virtual_size: int, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        if virtual_size % SECTOR or virtual_size > MAX_DYNAMIC_SIZE:
            raise FormatError(
                sink.name,
                "VHD footer",
                None,
                f"size {virtual_size} must be a multiple of 512 and at most 2040 GiB for a dynamic VHD",
            )
        super().__init__(sink, virtual_size)
        self.block_size = block_size
        self.entries = -(-virtual_size // block_size)
        self.bat = array("I", [UNALLOCATED]) * self.entries
        self.bat_offset = 1536
        self.bitmap = b"\xff" * (block_size // SECTOR // 8)
        self.bitmap_size = -(-len(self.bitmap) // SECTOR) * SECTOR
        self.next_free = self.bat_offset + -(-self.entries * 4 // SECTOR) * SECTOR

    def _write(self, offset: int, data: memoryview) -> None:
        for block, inner, pos, n in block_runs(offset, len(data), self.block_size):
            if self.bat[block] == UNALLOCATED:
                self.bat[block] = self.next_free // SECTOR
                # All sectors marked present (as qemu and Hyper-V do); unwritten ones read as zeros.
                self.sink.pwrite(self.next_free, self.bitmap)
                self.next_free += self.bitmap_size + self.block_size
            self.sink.pwrite(self.bat[block] * SECTOR + self.bitmap_size + inner, data[pos : pos + n])

    def _finish(self) -> None:
        unique_id = uuid.uuid4().bytes
        footer = build_footer(self.virtual_size, DYNAMIC, 512, unique_id)
        fields = [
            DYN_COOKIE,
            ALL_ONES,
            self.bat_offset,
            0x00010000,
            self.entries,
            self.block_size,
            0,
            bytes(16),
            0,
            0,
            bytes(512),
            bytes(192),
            bytes(256),
        ]
        header = DYN_HEADER.pack(*fields)
        fields[6] = checksum(header, 36)
        self.sink.pwrite(0, footer)
        self.sink.pwrite(512, DYN_HEADER.pack(*fields))
        self.sink.pwrite(self.bat_offset, pack_array(self.bat, "big"))
        self.sink.pwrite(self.next_free, footer)
        self.sink.truncate(self.next_free + 512)
