"""VHDX (Microsoft VHDX Format Specification v1.00). All fields little-endian;
GUIDs in Microsoft's mixed-endian layout (``uuid.UUID(bytes_le=...)``).

File layout::

    0       file identifier "vhdxfile" + UTF-16 creator
    64 KiB  header 1 (4 KiB: "head", CRC-32C, sequence, FileWriteGuid,
            DataWriteGuid, LogGuid, LogVersion, Version=1, LogLength, LogOffset)
    128 KiB header 2           -- the valid one with the higher sequence is current
    192 KiB region table 1 (64 KiB: "regi", CRC-32C, count; entries GUID/offset/length/required)
    256 KiB region table 2
    >=1 MiB log, metadata region, BAT, payload blocks (1 MiB aligned)

Metadata region: a "metadata" table of (item GUID, offset, length, flags);
required items are File Parameters (block size, LeaveBlockAllocated,
HasParent), Virtual Disk Size, Page 83 Data, Logical and Physical Sector Size,
and for differencing disks the Parent Locator (key/value UTF-16 strings).

BAT: u64 entries, state in bits 0-2, file offset in MiB in bits 20-63. After
every *chunk ratio* payload entries comes one sector-bitmap entry, where
chunk ratio = 2^23 * logical sector size / block size.

A non-empty log (LogGuid set) means the file was not closed cleanly and its
BAT or metadata may be stale: its active sequence is replayed into an
in-memory overlay (``vhdx_log``) that every later read goes through, so the
disk reads as after a replay and the file is never written. The writer produces a clean dynamic VHDX with Hyper-V's
defaults (32 MiB blocks, 512-byte logical / 4096-byte physical sectors).
"""

from __future__ import annotations

import struct
import uuid
from array import array
from collections.abc import Iterator
from pathlib import PureWindowsPath
from typing import Any

from imageport.disks.checksums import crc32c
from imageport.disks.extents import (
    MAX_CHAIN_DEPTH,
    Extent,
    KiB,
    MiB,
    block_runs,
    check_virtual_size,
    coalesce,
    pack_array,
    unpack_array,
)
from imageport.disks.formats import BlockMappedReader, DiskReader, DiskWriter
from imageport.disks.io import FileSystem, Sink
from imageport.disks.local_files import LOCAL
from imageport.disks.vhdx_log import replay
from imageport.errors import FormatError
from imageport.models import DiskFormat

SIGNATURE = b"vhdxfile"
HEADER_OFFSETS = (64 * KiB, 128 * KiB)
REGION_OFFSETS = (192 * KiB, 256 * KiB)
HEADER = struct.Struct("<4sIQ16s16s16sHHIQ")
REGION_HEADER = struct.Struct("<4sIII")
REGION_ENTRY = struct.Struct("<16sQII")
META_HEADER = struct.Struct("<8sHH20s")
META_ENTRY = struct.Struct("<16sIIII")

BAT_GUID = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_GUID = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
PAGE83_DATA = uuid.UUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR_SIZE = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR_SIZE = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
KNOWN_METADATA = {
    FILE_PARAMETERS,
    VIRTUAL_DISK_SIZE,
    PAGE83_DATA,
    LOGICAL_SECTOR_SIZE,
    PHYSICAL_SECTOR_SIZE,
    PARENT_LOCATOR,
}

NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED, UNMAPPED_V095, FULLY_PRESENT, PARTIALLY_PRESENT = 0, 1, 2, 3, 5, 6, 7
ZERO_STATES = {NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED, UNMAPPED_V095}
DEFAULT_BLOCK_SIZE = 32 * MiB
NULL_GUID = bytes(16)


def _with_crc(block: bytes, field_offset: int = 4) -> bytes:
    zeroed = block[:field_offset] + bytes(4) + block[field_offset + 4 :]
    return zeroed[:field_offset] + struct.pack("<I", crc32c(zeroed)) + zeroed[field_offset + 4 :]


def _crc_ok(block: bytes, field_offset: int = 4) -> bool:
    stored = struct.unpack_from("<I", block, field_offset)[0]
    return crc32c(block[:field_offset] + bytes(4) + block[field_offset + 4 :]) == stored


def chunk_ratio(logical_sector: int, block_size: int) -> int:
    return (1 << 23) * logical_sector // block_size


def bat_entry_count(payload_blocks: int, ratio: int, differencing: bool) -> int:
    if differencing:
        return -(-payload_blocks // ratio) * (ratio + 1)
    return payload_blocks + (payload_blocks - 1) // ratio


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

    def own_extents(self) -> Iterator[Extent]:
        bs = self.block_size
        return coalesce(
            Extent(b * bs, min(bs, self.virtual_size - b * bs))
            for b in range(self.payload_blocks)
            if self._block_state(b)[0] in (FULLY_PRESENT, PARTIALLY_PRESENT)
        )

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


# --- writer ------------------------------------------------------------------------------


class VhdxWriter(DiskWriter):
    """A clean dynamic VHDX: file id, two headers, two region tables, 1 MiB log,
    metadata, BAT, then payload blocks appended in write order."""

    format = DiskFormat.VHDX

    def __init__(
        self,
        sink: Sink,
        virtual_size: int,
        block_size: int = DEFAULT_BLOCK_SIZE,
        logical_sector: int = 512,
        physical_sector: int = 4096,
    ) -> None:
        if logical_sector not in (512, 4096) or physical_sector not in (512, 4096):
            raise FormatError(sink.name, "VHDX metadata", None, "sector sizes must be 512 or 4096")
        if virtual_size % logical_sector:
            raise FormatError(
                sink.name,
                "VHDX metadata",
                None,
                f"size {virtual_size} is not a multiple of the {logical_sector}-byte sector",
            )
        if block_size < MiB or block_size > 256 * MiB or block_size & (block_size - 1):
            raise FormatError(sink.name, "VHDX metadata", None, f"block size {block_size} is not 1-256 MiB, 2^n")
        super().__init__(sink, virtual_size)
        self.alignment = logical_sector
        self.block_size = block_size
        self.logical_sector = logical_sector
        self.physical_sector = physical_sector
        self.ratio = chunk_ratio(logical_sector, block_size)
        self.payload_blocks = -(-virtual_size // block_size)
        self.bat = array("Q", [NOT_PRESENT]) * bat_entry_count(self.payload_blocks, self.ratio, False)
        self.log_offset, self.log_length = MiB, MiB
        self.meta_offset, self.meta_length = 2 * MiB, MiB
        self.bat_offset = 3 * MiB
        self.bat_length = -(-len(self.bat) * 8 // MiB) * MiB
        self.next_free = self.bat_offset + self.bat_length

    def _write(self, offset: int, data: memoryview) -> None:
        for block, inner, pos, n in block_runs(offset, len(data), self.block_size):
            index = block + block // self.ratio
            if self.bat[index] == NOT_PRESENT:
                self.bat[index] = (self.next_free // MiB) << 20 | FULLY_PRESENT
                self.next_free += self.block_size
            self.sink.pwrite((self.bat[index] >> 20) * MiB + inner, data[pos : pos + n])

    def _finish(self) -> None:
        sink = self.sink
        sink.truncate(self.next_free)
        sink.pwrite(self.bat_offset, pack_array(self.bat, "little"))
        sink.pwrite(self.meta_offset, self._metadata())
        regions = bytearray(64 * KiB)
        REGION_HEADER.pack_into(regions, 0, b"regi", 0, 2, 0)
        REGION_ENTRY.pack_into(regions, 16, BAT_GUID.bytes_le, self.bat_offset, self.bat_length, 1)
        REGION_ENTRY.pack_into(regions, 48, METADATA_GUID.bytes_le, self.meta_offset, self.meta_length, 1)
        region_block = _with_crc(bytes(regions))
        for off in REGION_OFFSETS:
            sink.pwrite(off, region_block)
        file_write, data_write = uuid.uuid4().bytes_le, uuid.uuid4().bytes_le
        for seq, off in enumerate(HEADER_OFFSETS):
            header = bytearray(4 * KiB)
            HEADER.pack_into(
                header, 0, b"head", 0, seq, file_write, data_write, NULL_GUID, 0, 1, self.log_length, self.log_offset
            )
            sink.pwrite(off, _with_crc(bytes(header)))
        ident = SIGNATURE + "imageport".encode("utf-16-le")
        sink.pwrite(0, ident)

    def _metadata(self) -> bytes:
        items = [
            (FILE_PARAMETERS, struct.pack("<II", self.block_size, 0), 4),
            (VIRTUAL_DISK_SIZE, struct.pack("<Q", self.virtual_size), 6),
            (PAGE83_DATA, uuid.uuid4().bytes_le, 6),
            (LOGICAL_SECTOR_SIZE, struct.pack("<I", self.logical_sector), 6),
            (PHYSICAL_SECTOR_SIZE, struct.pack("<I", self.physical_sector), 6),
        ]
        region = bytearray(64 * KiB + 4 * KiB)
        META_HEADER.pack_into(region, 0, b"metadata", 0, len(items), bytes(20))
        data_off = 64 * KiB
        for i, (gid, payload, flags) in enumerate(items):
            META_ENTRY.pack_into(region, 32 + 32 * i, gid.bytes_le, data_off, len(payload), flags, 0)
            region[data_off : data_off + len(payload)] = payload
            data_off += len(payload)
        return bytes(region)
