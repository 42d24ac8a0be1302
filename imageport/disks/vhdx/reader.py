"""``VhdxReader``: headers, region tables, metadata, BAT, log replay, parent locators."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from pathlib import PureWindowsPath
from typing import Any

from imageport.disks.extents import (
    MAX_CHAIN_DEPTH,
    KiB,
    MiB,
    check_virtual_size,
    unpack_array,
)
from imageport.disks.formats import BlockMappedReader, DiskReader
from imageport.disks.io import FileSystem
from imageport.disks.local_files import LOCAL
from imageport.disks.vhdx.layout import (
    BAT_GUID,
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
    VIRTUAL_DISK_SIZE,
    ZERO_STATES,
    _crc_ok,
    bat_entry_count,
    chunk_ratio,
)
from imageport.disks.vhdx_log import replay
from imageport.errors import FormatError
from imageport.models import DiskFormat


class VhdxReader(BlockMappedReader):
    format = DiskFormat.VHDX

    def __init__(self, path: str, fs: FileSystem = LOCAL, _seen: tuple[str, ...] = ()) -> None:
        super().__init__(path, fs)
        try:
            self._parse(_seen)
        except BaseException:
            self.close()
            raise

    # --- structure ------------------------------------------------------------------

    def _parse(self, seen: tuple[str, ...]) -> None:
        f, path = self.file, self.path
        self.file_on_disk = f
        self.log_replayed = False
        ident = f.read_exact(0, 8, "VHDX file identifier")
        if ident != SIGNATURE:
            raise FormatError(path, "VHDX file identifier", 0, f"signature is {ident!r}, expected b'vhdxfile'")
        header = self._current_header()
        self.header = header
        if header["log_guid"] != NULL_GUID:  # not closed cleanly: read as after a replay, writing nothing
            self.file = f = replay(f, header)
            self.log_replayed = f is not self.file_on_disk
        regions = self._regions()
        bat_off, bat_len = regions[BAT_GUID]
        meta_off, meta_len = regions[METADATA_GUID]
        meta = self._metadata(meta_off, meta_len)
        self.block_size, flags = struct.unpack_from("<II", meta[FILE_PARAMETERS])
        self.has_parent = bool(flags & 2)
        self.subformat = "differencing" if self.has_parent else ("fixed" if flags & 1 else "dynamic")
        if self.block_size < MiB or self.block_size > 256 * MiB or self.block_size & (self.block_size - 1):
            raise FormatError(
                path,
                "VHDX file parameters",
                meta_off,
                f"block size {self.block_size} is not a power of two from 1 to 256 MiB",
            )
        self.logical_sector = struct.unpack_from("<I", meta[LOGICAL_SECTOR_SIZE])[0]
        self.physical_sector = struct.unpack_from("<I", meta[PHYSICAL_SECTOR_SIZE])[0]
        for name, value in (("logical", self.logical_sector), ("physical", self.physical_sector)):
            if value not in (512, 4096):
                raise FormatError(path, "VHDX metadata", meta_off, f"{name} sector size {value} is not 512 or 4096")
        self.virtual_size = check_virtual_size(
            path,
            "VHDX virtual disk size",
            meta_off,
            struct.unpack_from("<Q", meta[VIRTUAL_DISK_SIZE])[0],
            self.logical_sector,
        )
        self.disk_id = uuid.UUID(bytes_le=meta[PAGE83_DATA][:16])
        self.ratio = chunk_ratio(self.logical_sector, self.block_size)
        self.payload_blocks = -(-self.virtual_size // self.block_size)
        needed = bat_entry_count(self.payload_blocks, self.ratio, self.has_parent)
        if needed * 8 > bat_len:
            raise FormatError(
                path, "VHDX BAT region", bat_off, f"holds {bat_len // 8} entries, the disk needs {needed}"
            )
        self.bat = unpack_array(f.read_exact(bat_off, needed * 8, "VHDX BAT"), "Q", "little")
        self._check_bat(bat_off)
        if self.has_parent:
            if PARENT_LOCATOR not in meta:
                raise FormatError(path, "VHDX metadata", meta_off, "differencing disk without a parent locator")
            self.parent = self._open_parent(meta[PARENT_LOCATOR], seen)

    def _current_header(self) -> dict[str, Any]:
        best: dict[str, Any] | None = None
        for offset in HEADER_OFFSETS:
            raw = self.file.read_exact(offset, 4 * KiB, "VHDX header")
            sig, _crc, seq, fwg, dwg, log_guid, _log_ver, version, log_len, log_off = HEADER.unpack_from(raw)
            if sig != b"head" or not _crc_ok(raw):
                continue
            if version != 1:
                raise FormatError(self.path, "VHDX header", offset, f"version {version} is not 1")
            if best is None or seq > best["sequence"]:
                best = {
                    "offset": offset,
                    "sequence": seq,
                    "file_write_guid": fwg,
                    "data_write_guid": dwg,
                    "log_guid": log_guid,
                    "log_length": log_len,
                    "log_offset": log_off,
                }
        if best is None:
            raise FormatError(
                self.path, "VHDX header", HEADER_OFFSETS[0], "neither header has a valid signature and CRC-32C"
            )
        return best

    def _regions(self) -> dict[uuid.UUID, tuple[int, int]]:
        for offset in REGION_OFFSETS:
            raw = self.file.read_exact(offset, 64 * KiB, "VHDX region table")
            sig, _crc, count, _r = REGION_HEADER.unpack_from(raw)
            if sig != b"regi" or not _crc_ok(raw) or count > 2047:
                continue
            regions: dict[uuid.UUID, tuple[int, int]] = {}
            for i in range(count):
                guid, file_off, length, required = REGION_ENTRY.unpack_from(raw, 16 + 32 * i)
                gid = uuid.UUID(bytes_le=guid)
                if gid not in (BAT_GUID, METADATA_GUID):
                    if required & 1:
                        raise FormatError(
                            self.path,
                            "VHDX region table",
                            offset,
                            f"unknown required region {gid}; refusing to guess its meaning",
                        )
                    continue
                if file_off % MiB or file_off < MiB or file_off + length > self.file.size:
                    raise FormatError(
                        self.path,
                        "VHDX region table",
                        offset + 16 + 32 * i,
                        f"region {gid} at {file_off}+{length} is misaligned or past the end of file",
                    )
                regions[gid] = (file_off, length)
            if BAT_GUID in regions and METADATA_GUID in regions:
                return regions
            raise FormatError(self.path, "VHDX region table", offset, "BAT or metadata region missing")
        raise FormatError(
            self.path, "VHDX region table", REGION_OFFSETS[0], "neither region table has a valid signature and CRC-32C"
        )

    def _metadata(self, offset: int, length: int) -> dict[uuid.UUID, bytes]:
        table = self.file.read_exact(offset, min(length, 64 * KiB), "VHDX metadata table")
        sig, _r, count, _r2 = META_HEADER.unpack_from(table)
        if sig != b"metadata" or count > 2047:
            raise FormatError(self.path, "VHDX metadata table", offset, "bad signature or entry count")
        items: dict[uuid.UUID, bytes] = {}
        for i in range(count):
            guid, item_off, item_len, flags, _r3 = META_ENTRY.unpack_from(table, 32 + 32 * i)
            gid = uuid.UUID(bytes_le=guid)
            if gid not in KNOWN_METADATA:
                if flags & 4:
                    raise FormatError(
                        self.path, "VHDX metadata table", offset + 32 + 32 * i, f"unknown required metadata item {gid}"
                    )
                continue
            if item_off < 64 * KiB or item_off + item_len > length or item_len > MiB:
                raise FormatError(
                    self.path,
                    "VHDX metadata table",
                    offset + 32 + 32 * i,
                    f"item {gid} at {item_off}+{item_len} lies outside the metadata region",
                )
            items[gid] = self.file.read_exact(offset + item_off, item_len, f"VHDX metadata item {gid}")
        fixed_sizes = {
            FILE_PARAMETERS: 8,
            VIRTUAL_DISK_SIZE: 8,
            PAGE83_DATA: 16,
            LOGICAL_SECTOR_SIZE: 4,
            PHYSICAL_SECTOR_SIZE: 4,
        }
        for gid, size in fixed_sizes.items():
            if len(items.get(gid, b"")) < size:
                raise FormatError(self.path, "VHDX metadata", offset, f"required item {gid} missing or short")
        return items

    def _check_bat(self, bat_off: int) -> None:
        bs, size = self.block_size, self.file.size
        for block in range(self.payload_blocks):
            index = block + block // self.ratio
            entry = self.bat[index]
            state, mb = entry & 7, entry >> 20
            if state in ZERO_STATES:
                continue
            if state == PARTIALLY_PRESENT and not self.has_parent:
                raise FormatError(
                    self.path,
                    "VHDX BAT",
                    bat_off + 8 * index,
                    f"block {block} is partially present in a non-differencing disk",
                )
            if state not in (FULLY_PRESENT, PARTIALLY_PRESENT):
                raise FormatError(self.path, "VHDX BAT", bat_off + 8 * index, f"block {block} has bad state {state}")
            if mb == 0 or mb * MiB + min(bs, self.virtual_size - block * bs) > size:
                raise FormatError(
                    self.path,
                    "VHDX BAT",
                    bat_off + 8 * index,
                    f"block {block} points to {mb * MiB}, outside the file ({size} bytes)",
                )

    # --- differencing ------------------------------------------------------------------

    def _open_parent(self, locator: bytes, seen: tuple[str, ...]) -> DiskReader:
        fs = self.fs
        seen = (*seen, fs.realpath(self.path))
        if len(seen) > MAX_CHAIN_DEPTH:
            raise FormatError(self.path, "VHDX parent chain", None, f"longer than {MAX_CHAIN_DEPTH} disks")
        entries = _parse_locator(self.path, locator)
        base = fs.dirname(self.path)
        candidates = []
        if "relative_path" in entries:
            parts = [p for p in PureWindowsPath(entries["relative_path"]).parts if p not in (".", "\\")]
            candidates.append(fs.join(base, "/".join(parts)))
        for key in ("absolute_win32_path", "volume_path"):
            if key in entries:
                candidates.append(fs.join(base, PureWindowsPath(entries[key]).name))
        linkage = {
            entries.get("parent_linkage", "").strip("{}").lower(),
            entries.get("parent_linkage2", "").strip("{}").lower(),
        } - {""}
        for candidate in dict.fromkeys(candidates):
            if fs.realpath(candidate) in seen:
                raise FormatError(self.path, "VHDX parent chain", None, f"loops back to {candidate}")
            if fs.isfile(candidate):
                parent = VhdxReader(candidate, fs, _seen=seen)
                if str(uuid.UUID(bytes_le=parent.header["data_write_guid"])) not in linkage:
                    parent.close()
                    raise FormatError(
                        self.path,
                        "VHDX parent locator",
                        None,
                        f"{candidate} has changed since this child was made (DataWriteGuid differs)",
                    )
                if parent.virtual_size != self.virtual_size:
                    parent.close()
                    raise FormatError(self.path, "VHDX parent locator", None, f"{candidate} has a different size")
                return parent
        raise FormatError(
            self.path, "VHDX parent locator", None, f"parent not found (tried {', '.join(candidates) or 'no path'})"
        )

    # --- reading -----------------------------------------------------------------------

    def _block_state(self, block: int) -> tuple[int, int]:
        entry = self.bat[block + block // self.ratio]
        return entry & 7, (entry >> 20) * MiB

    def _stored_blocks(self) -> Iterator[tuple[int, int]]:
        for b in range(self.payload_blocks):
            state, file_off = self._block_state(b)
            if state in (FULLY_PRESENT, PARTIALLY_PRESENT):
                yield b, file_off

    def _read_block(self, block: int, inner: int, voff: int, part: memoryview) -> None:
        state, file_off = self._block_state(block)
        if state == FULLY_PRESENT:
            self.file.preadv(part, file_off + inner)
        elif state == PARTIALLY_PRESENT:
            self._read_partial(block, file_off, voff, inner, part)
        elif state == NOT_PRESENT:
            self._read_below(voff, part)  # the parent's data in a differencing disk, else zeros
        else:
            part[:] = bytes(len(part))  # ZERO / UNMAPPED / UNDEFINED read as zeros, even over a parent

    def _read_partial(self, block: int, file_off: int, voff: int, inner: int, part: memoryview) -> None:
        assert self.parent is not None
        ls = self.logical_sector
        chunk = block // self.ratio
        bitmap_entry = self.bat[chunk * (self.ratio + 1) + self.ratio]
        if bitmap_entry & 7 != 6:
            self.parent.readinto(voff, part)
            return
        bitmap_off = (bitmap_entry >> 20) * MiB
        first_sector = (voff - chunk * self.ratio * self.block_size) // ls
        count = len(part) // ls
        bits = self.file.read_exact(
            bitmap_off + first_sector // 8, (first_sector + count) // 8 - first_sector // 8 + 1, "VHDX sector bitmap"
        )
        for i in range(count):
            s = first_sector + i - (first_sector // 8) * 8
            sector_view = part[i * ls : (i + 1) * ls]
            if bits[s >> 3] & (1 << (s & 7)):
                self.file.preadv(sector_view, file_off + inner + i * ls)
            else:
                self.parent.readinto(voff + i * ls, sector_view)

    def change_markers(self) -> dict[str, str]:
        h = self.header
        return {
            "vhdx_data_write_guid": str(uuid.UUID(bytes_le=h["data_write_guid"])),
            "vhdx_file_write_guid": str(uuid.UUID(bytes_le=h["file_write_guid"])),
            "vhdx_log_guid": str(uuid.UUID(bytes_le=h["log_guid"])),
            "vhdx_sequence": str(h["sequence"]),
            "vhdx_disk_id": str(self.disk_id),
        }

    def metadata(self) -> Iterator[bytes]:
        yield self.bat.tobytes()

    def details(self) -> dict[str, Any]:
        return {
            "block_size": self.block_size,
            "logical_sector_size": self.logical_sector,
            "physical_sector_size": self.physical_sector,
            "subformat": self.subformat,
            "header_sequence": self.header["sequence"],
            "log_replayed": self.log_replayed,
            "parent": self.parent.path if self.parent else None,
        }


def _parse_locator(path: str, data: bytes) -> dict[str, str]:
    if len(data) < 20:
        raise FormatError(path, "VHDX parent locator", None, "too short")
    count = struct.unpack_from("<H", data, 18)[0]
    entries: dict[str, str] = {}
    for i in range(count):
        if 20 + 12 * (i + 1) > len(data):
            raise FormatError(path, "VHDX parent locator", None, f"entry {i} lies past the item")
        koff, voff, klen, vlen = struct.unpack_from("<IIHH", data, 20 + 12 * i)
        if koff + klen > len(data) or voff + vlen > len(data):
            raise FormatError(path, "VHDX parent locator", None, f"entry {i} points outside the item")
        key = data[koff : koff + klen].decode("utf-16-le", errors="replace")
        entries[key] = data[voff : voff + vlen].decode("utf-16-le", errors="replace")
    return entries
