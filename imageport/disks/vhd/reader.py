"""VHD readers: fixed, dynamic and differencing, and ``open_vhd`` which tells them apart."""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Iterator
from pathlib import PureWindowsPath
from typing import Any

from imageport.disks.extents import (
    MAX_CHAIN_DEPTH,
    SECTOR,
    Extent,
    MiB,
    check_virtual_size,
    unpack_array,
)
from imageport.disks.formats import BlockMappedReader, DiskReader, FileReader
from imageport.disks.io import FileSystem
from imageport.disks.local_files import LOCAL
from imageport.disks.vhd.layout import (
    DIFFERENCING,
    DYN_COOKIE,
    DYN_HEADER,
    FIXED,
    LOCATOR,
    MAX_DYNAMIC_SIZE,
    UNALLOCATED,
    checksum,
    is_vhd_footer,
    parse_footer,
)
from imageport.errors import FormatError
from imageport.models import DiskFormat


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

    def _stored_blocks(self) -> Iterator[tuple[int, int]]:
        bs = self.block_size
        for i, entry in enumerate(self.bat):
            if entry != UNALLOCATED and i * bs < self.virtual_size:
                yield i, entry * SECTOR + self.bitmap_size

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
