"""Differencing VHD and VHDX: children with partial sector bitmaps over a parent, crafted
here (qemu-img cannot write either), read by imageport and judged by libvhdi."""

from __future__ import annotations

import hashlib
import random
import struct
import subprocess
import uuid
from array import array
from pathlib import Path

import pytest

from imageport.disks import vhd, vhdx
from imageport.disks.convert import convert, hash_disk
from imageport.disks.detect import open_disk
from imageport.disks.local_files import LocalFileSink
from imageport.errors import FormatError
from imageport.models import DiskFormat
from tests.core.disks.images import MiB, libvhdi_sha256, qemu_compare

SIZE = 8 * MiB
SECTOR = 512


def random_disk(seed: int) -> bytes:
    return random.Random(seed).randbytes(SIZE)


def write_image(writer_cls, path: Path, data: bytes, blocks: list[tuple[int, int]], **kw):  # type: ignore[no-untyped-def]
    writer = writer_cls(LocalFileSink(path), SIZE, **kw)
    for start, end in blocks:
        writer.write(start, memoryview(data)[start:end])
    return writer


# --- VHD ---------------------------------------------------------------------------------


# Sectors of block 1 present in the child. libvhdi 20210425, our independent judge, reads a
# partial bitmap byte wrongly (after a set bit it takes the rest of that byte from the child;
# it does confirm MSB-first order), so the judged pattern is whole bytes; the sub-byte case is
# checked against the specification below.
BYTE_ALIGNED = [*range(16), *range(96, 104)]
SUB_BYTE = [*range(16), 100]


def make_vhd_child(
    tmp_path: Path, parent_name: str = "parent.vhd", present: list[int] = BYTE_ALIGNED
) -> tuple[Path, Path, bytes]:
    parent_data, child_data = random_disk(1), random_disk(2)
    parent = tmp_path / "parent.vhd"
    write_image(vhd.VhdDynamicWriter, parent, parent_data, [(0, SIZE)]).finish()
    child = tmp_path / "child.vhd"
    # blocks 1 and 3 (2 MiB each) allocated in the child
    write_image(vhd.VhdDynamicWriter, child, child_data, [(2 * MiB, 4 * MiB), (6 * MiB, 8 * MiB)]).finish()

    raw = bytearray(child.read_bytes())
    parent_uuid = parent.read_bytes()[-512:][68:84]
    # footers: disk type 4 (differencing)
    for off in (0, len(raw) - 512):
        footer = bytearray(raw[off : off + 512])
        footer[60:64] = struct.pack(">I", vhd.DIFFERENCING)
        footer[64:68] = bytes(4)
        footer[64:68] = struct.pack(">I", vhd.checksum(bytes(footer), 64))
        raw[off : off + 512] = footer
    # dynamic header at 512: parent UUID, name, one W2ru locator stored in the reserved tail
    header = bytearray(raw[512:1536])
    header[40:56] = parent_uuid
    header[64 : 64 + 512] = parent_name.encode("utf-16-be").ljust(512, b"\0")
    locator = parent_name.encode("utf-16-le")
    header[576 : 576 + 24] = struct.pack(">4sIIIQ", b"W2ru", SECTOR, len(locator), 0, 512 + 768)
    header[768 : 768 + len(locator)] = locator
    header[36:40] = bytes(4)
    header[36:40] = struct.pack(">I", vhd.checksum(bytes(header), 36))
    raw[512:1536] = header
    # block 1: only ``present`` sectors in the child; the rest come from the parent
    bat = struct.unpack_from(">4I", raw, 1536)
    bitmap_off = bat[1] * SECTOR
    bitmap = bytearray(SECTOR)
    for s in present:
        bitmap[s >> 3] |= 0x80 >> (s & 7)  # MSB first
    raw[bitmap_off : bitmap_off + SECTOR] = bitmap
    child.write_bytes(raw)

    expected = bytearray(parent_data)
    for s in present:
        off = 2 * MiB + s * SECTOR
        expected[off : off + SECTOR] = child_data[off : off + SECTOR]
    expected[6 * MiB : 8 * MiB] = child_data[6 * MiB : 8 * MiB]
    return parent, child, bytes(expected)


def test_differencing_vhd_reads_through_its_parent(tmp_path: Path) -> None:
    parent, child, expected = make_vhd_child(tmp_path)
    digest = hashlib.sha256(expected).hexdigest()
    assert libvhdi_sha256(child, parent=parent) == (SIZE, digest)  # the independent judge agrees
    with open_disk(child) as reader:
        assert reader.subformat == "differencing" and reader.parent is not None
        assert [r.path for r in reader.chain()] == [str(child), str(parent)]
        assert reader.read(2 * MiB, 16 * SECTOR) == expected[2 * MiB : 2 * MiB + 16 * SECTOR]
        assert (
            reader.read(2 * MiB + 95 * SECTOR, 10 * SECTOR) == expected[2 * MiB + 95 * SECTOR : 2 * MiB + 105 * SECTOR]
        )
    assert hash_disk(child, sha256=True).sha256 == digest
    # flattening the chain into one image keeps the content
    out = tmp_path / "flat.vhdx"
    assert convert(child, out, DiskFormat.VHDX, sha256=True).sha256 == digest
    (tmp_path / "expected.raw").write_bytes(expected)
    assert qemu_compare(tmp_path / "expected.raw", "raw", out, "vhdx").returncode == 0


def test_vhd_sector_bitmap_is_one_bit_per_sector_msb_first(tmp_path: Path) -> None:
    _parent, child, expected = make_vhd_child(tmp_path, present=SUB_BYTE)
    with open_disk(child) as reader:
        for sector in (99, 100, 101, 103):
            off = 2 * MiB + sector * SECTOR
            assert reader.read(off, SECTOR) == expected[off : off + SECTOR], sector
    assert hash_disk(child, sha256=True).sha256 == hashlib.sha256(expected).hexdigest()


def test_vhd_parent_chain_loop_is_refused(tmp_path: Path) -> None:
    _parent, child, _ = make_vhd_child(tmp_path, parent_name="child.vhd")
    with pytest.raises(FormatError, match="loops back"):
        open_disk(child)


def test_vhd_missing_or_wrong_parent_is_refused(tmp_path: Path) -> None:
    parent, child, _ = make_vhd_child(tmp_path)
    parent.rename(tmp_path / "moved.vhd")
    with pytest.raises(FormatError, match="parent not found"):
        open_disk(child)
    write_image(vhd.VhdDynamicWriter, parent, random_disk(3), [(0, MiB)]).finish()  # a stranger in its place
    with pytest.raises(FormatError, match="not this disk's parent"):
        open_disk(child)


# --- VHDX ----------------------------------------------------------------------------------

LOCATOR_TYPE = uuid.UUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")


class DifferencingVhdxWriter(vhdx.VhdxWriter):
    """Test-only: our dynamic writer plus HasParent, a parent locator and a sector bitmap."""

    def __init__(self, sink, size: int, parent: Path, partial: dict[int, list[int]]) -> None:  # type: ignore[no-untyped-def]
        super().__init__(sink, size, block_size=MiB)
        self.bat = array("Q", [vhdx.NOT_PRESENT]) * vhdx.bat_entry_count(self.payload_blocks, self.ratio, True)
        self.parent_path = parent
        self.partial = partial  # block -> sectors present in the child

    def _metadata(self) -> bytes:
        region = bytearray(super()._metadata())
        # file parameters: set HasParent
        struct.pack_into("<II", region, 64 * 1024, self.block_size, 2)
        with vhdx.VhdxReader(str(self.parent_path)) as parent:
            linkage = "{" + str(uuid.UUID(bytes_le=parent.header["data_write_guid"])) + "}"
        pairs = [("parent_linkage", linkage), ("relative_path", ".\\" + self.parent_path.name)]
        strings = b""
        entries = []
        table_len = 20 + 12 * len(pairs)
        for key, value in pairs:
            k, v = key.encode("utf-16-le"), value.encode("utf-16-le")
            entries.append((table_len + len(strings), table_len + len(strings) + len(k), len(k), len(v)))
            strings += k + v
        item = LOCATOR_TYPE.bytes_le + struct.pack("<HH", 0, len(pairs))
        item += b"".join(struct.pack("<IIHH", *e) for e in entries) + strings
        count = struct.unpack_from("<H", region, 10)[0]
        struct.pack_into("<H", region, 10, count + 1)
        data_off = 64 * 1024 + 1024
        struct.pack_into("<16sIIII", region, 32 + 32 * count, vhdx.PARENT_LOCATOR.bytes_le, data_off, len(item), 4, 0)
        region[data_off : data_off + len(item)] = item
        return bytes(region)

    def _finish(self) -> None:
        bitmap_block = self.next_free
        self.next_free += MiB
        bits = bytearray(MiB)
        for block, sectors in self.partial.items():
            index = block + block // self.ratio
            self.bat[index] = (self.bat[index] & ~7) | vhdx.PARTIALLY_PRESENT
            for s in sectors:
                sector = block * self.block_size // self.logical_sector + s
                bits[sector >> 3] |= 1 << (sector & 7)
        self.sink.pwrite(bitmap_block, bits)
        self.bat[self.ratio] = (bitmap_block // MiB) << 20 | 6  # chunk 0's sector bitmap entry
        super()._finish()


def test_differencing_vhdx_reads_through_its_parent(tmp_path: Path) -> None:
    parent_data, child_data = random_disk(4), random_disk(5)
    parent = tmp_path / "parent.vhdx"
    write_image(vhdx.VhdxWriter, parent, parent_data, [(0, SIZE)], block_size=MiB).finish()
    child = tmp_path / "child.vhdx"
    partial = {2: [0, 1, 2, 7, 2047]}  # block 2: five sectors in the child
    writer = DifferencingVhdxWriter(LocalFileSink(child), SIZE, parent, partial)
    writer.write(2 * MiB, memoryview(child_data)[2 * MiB : 3 * MiB])  # partially present
    writer.write(5 * MiB, memoryview(child_data)[5 * MiB : 6 * MiB])  # fully present
    writer.finish()

    expected = bytearray(parent_data)
    for s in partial[2]:
        off = 2 * MiB + s * SECTOR
        expected[off : off + SECTOR] = child_data[off : off + SECTOR]
    expected[5 * MiB : 6 * MiB] = child_data[5 * MiB : 6 * MiB]
    digest = hashlib.sha256(expected).hexdigest()

    assert libvhdi_sha256(child, parent=parent) == (SIZE, digest)
    with open_disk(child) as reader:
        assert reader.subformat == "differencing"
        assert reader.read(2 * MiB + 6 * SECTOR, 2 * SECTOR) == bytes(
            expected[2 * MiB + 6 * SECTOR : 2 * MiB + 8 * SECTOR]
        )
    assert hash_disk(child, sha256=True).sha256 == digest

    # rewriting the parent (new DataWriteGuid) breaks the link: refused, not misread
    parent.unlink()
    write_image(vhdx.VhdxWriter, parent, parent_data, [(0, SIZE)], block_size=MiB).finish()
    with pytest.raises(FormatError, match="DataWriteGuid differs"):
        open_disk(child)


# --- holes inside stored blocks --------------------------------------------------------------

HOLE = (128 * 1024, 384 * 1024)  # inside a 1 MiB block: file space never written


def punch(path: Path, offset: int, length: int) -> None:
    """Give back a range of the file to the file system: it reads as zeros from now on (a block
    allocated by extending the file but never filled, as qemu-img and Hyper-V leave them)."""
    subprocess.run(["fallocate", "--punch-hole", "-o", str(offset), "-l", str(length), str(path)], check=True)


def test_a_hole_in_a_stored_block_reads_as_zeros_over_the_parent_and_costs_no_read(tmp_path: Path) -> None:
    parent_data, child_data = random_disk(6), random_disk(7)
    parent = tmp_path / "parent.vhdx"
    write_image(vhdx.VhdxWriter, parent, parent_data, [(0, SIZE)], block_size=MiB).finish()
    child = tmp_path / "child.vhdx"
    writer = DifferencingVhdxWriter(LocalFileSink(child), SIZE, parent, {})
    writer.write(5 * MiB, memoryview(child_data)[5 * MiB : 6 * MiB])  # block 5 fully present
    writer.finish()
    with open_disk(child) as reader:
        stored_at = reader._block_state(5)[1]
    punch(child, stored_at + HOLE[0], HOLE[1] - HOLE[0])
    expected = bytearray(parent_data)
    expected[5 * MiB : 6 * MiB] = child_data[5 * MiB : 6 * MiB]
    expected[5 * MiB + HOLE[0] : 5 * MiB + HOLE[1]] = bytes(HOLE[1] - HOLE[0])  # zeros, not the parent's
    digest = hashlib.sha256(expected).hexdigest()
    assert libvhdi_sha256(child, parent=parent) == (SIZE, digest)  # the independent judge agrees

    with open_disk(child) as reader:
        assert [(e.offset, e.end) for e in reader.own_extents()] == [
            (5 * MiB, 5 * MiB + HOLE[0]),
            (5 * MiB + HOLE[1], 6 * MiB),
        ]
        assert [(e.offset, e.end) for e in reader.extents()] == [(0, SIZE)]  # the parent's data all around
    out = tmp_path / "flat.raw"
    assert convert(child, out, DiskFormat.RAW, sha256=True).sha256 == digest
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest


def test_holes_in_stored_vhd_blocks_are_left_out_of_the_extents(tmp_path: Path) -> None:
    data = random_disk(8)
    source = tmp_path / "dynamic.vhd"
    write_image(vhd.VhdDynamicWriter, source, data, [(0, 4 * MiB)]).finish()  # blocks 0 and 1 (2 MiB each)
    with open_disk(source) as reader:
        stored_at = reader.bat[1] * SECTOR + reader.bitmap_size
    # a VHD block's data follows a 512-byte bitmap: punch whole file-system pages only
    at = -(-(stored_at + HOLE[0]) // 4096) * 4096
    length = HOLE[1] - HOLE[0]
    punch(source, at, length)
    hole = 2 * MiB + at - stored_at
    expected = bytearray(data[: 4 * MiB] + bytes(SIZE - 4 * MiB))
    expected[hole : hole + length] = bytes(length)
    (tmp_path / "expected.raw").write_bytes(expected)
    assert qemu_compare(tmp_path / "expected.raw", "raw", source, "vpc").returncode == 0

    with open_disk(source) as reader:
        assert [(e.offset, e.end) for e in reader.extents()] == [(0, hole), (hole + length, 4 * MiB)]
    out = tmp_path / "out.vhdx"
    result = convert(source, out, DiskFormat.VHDX)
    assert result.source_allocated == 4 * MiB - length
    assert qemu_compare(tmp_path / "expected.raw", "raw", out, "vhdx").returncode == 0
