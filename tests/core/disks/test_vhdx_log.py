"""A VHDX whose log was never replayed reads as it will after a replay, and the file is not touched.

The log entries are built here per the VHDX specification (section 2.3); qemu-img is the
judge: ``qemu-img check -r all`` on a copy replays the log for real, then ``qemu-img compare``
holds that copy against imageport's reading of the untouched original."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from imageport.disks.checksums import crc32c
from imageport.disks.convert import convert, hash_disk
from imageport.disks.detect import open_disk
from imageport.disks.vhdx import BAT_GUID, HEADER_OFFSETS, VhdxReader
from imageport.disks.vhdx.layout import _with_crc
from imageport.errors import FormatError
from imageport.models import DiskFormat
from tests.core.disks.images import MiB, qemu_compare

LOG_SECTOR = 4096
LOG_OFFSET = MiB  # where qemu-img puts the 1 MiB log


@pytest.fixture(scope="module")
def clean_vhdx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("vhdx-log")
    raw = d / "src.raw"
    raw.write_bytes(bytes(range(256)) * (3 * MiB // 256) + bytes(MiB))  # blocks 0-2 hold data, block 3 none
    out = d / "clean.vhdx"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "block_size=1048576", str(raw), str(out)],
        check=True,
        capture_output=True,
    )
    return out


def _layout(path: Path) -> tuple[int, list[int]]:
    """The BAT's file offset and each payload block's file offset (0: not present)."""
    with VhdxReader(str(path)) as reader:
        blocks = [reader._block_state(b)[1] for b in range(reader.payload_blocks)]
        regions = reader._regions()
    assert all(blocks[:3]) and not blocks[3]  # what the tests below assume of qemu's layout
    return regions[BAT_GUID][0], blocks


def log_entry(sequence: int, guid: bytes, size: int, descriptors: list[tuple[str, int, bytes | int]]) -> bytes:
    """One log entry: ("desc", file offset, 4 KiB) writes a sector, ("zero", file offset, length) zeros."""
    count = len(descriptors)
    desc_sectors = -(-(count + 2) // 128)
    data_sectors = [d for d in descriptors if d[0] == "desc"]
    length = (desc_sectors + len(data_sectors)) * LOG_SECTOR
    head = bytearray(desc_sectors * LOG_SECTOR)
    struct.pack_into("<4sIIIQII16sQQ", head, 0, b"loge", 0, length, 0, sequence, count, 0, guid, size, size)
    sectors = b""
    for i, (kind, offset, payload) in enumerate(descriptors):
        if kind == "zero":
            assert isinstance(payload, int)
            struct.pack_into("<4sIQQQ", head, 64 + 32 * i, b"zero", 0, payload, offset, sequence)
        else:
            assert isinstance(payload, bytes) and len(payload) == LOG_SECTOR
            struct.pack_into("<4s4s8sQQ", head, 64 + 32 * i, b"desc", payload[-4:], payload[:8], offset, sequence)
            sectors += (
                b"data" + struct.pack("<I", sequence >> 32) + payload[8:-4] + struct.pack("<I", sequence & 0xFFFFFFFF)
            )
    entry = bytearray(bytes(head) + sectors)
    struct.pack_into("<I", entry, 4, crc32c(bytes(entry)))
    return bytes(entry)


def with_log(src: Path, dst: Path, entries: list[bytes], guid: bytes) -> Path:
    """A copy of ``src`` whose headers name log ``guid`` and whose log holds ``entries``."""
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        for offset in HEADER_OFFSETS:
            f.seek(offset)
            header = bytearray(f.read(4096))
            header[48:64] = guid  # LogGuid
            f.seek(offset)
            f.write(_with_crc(bytes(header)))
        f.seek(LOG_OFFSET)
        f.write(b"".join(entries))
    return dst


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_pending_log_that_changes_data_is_replayed_in_memory(clean_vhdx: Path, tmp_path: Path) -> None:
    bat_offset, blocks = _layout(clean_vhdx)
    size = clean_vhdx.stat().st_size
    guid = uuid.uuid4().bytes_le
    new_sector = bytes([0xA5, 0x5A]) * (LOG_SECTOR // 2)
    bat = bytearray(clean_vhdx.read_bytes()[bat_offset : bat_offset + LOG_SECTOR])
    struct.pack_into("<Q", bat, 2 * 8, 0)  # block 2 becomes "not present": it reads as zeros
    first = log_entry(7, guid, size, [("desc", blocks[0] + 8192, new_sector), ("zero", blocks[1], 3 * LOG_SECTOR)])
    second = log_entry(8, guid, size, [("desc", bat_offset, bytes(bat))])
    dirty = with_log(clean_vhdx, tmp_path / "dirty.vhdx", [first, second], guid)
    before = sha256(dirty)

    with open_disk(dirty) as reader:
        assert reader.details()["log_replayed"] is True
        assert reader.read(8192, LOG_SECTOR) == new_sector
        assert reader.read(MiB, 3 * LOG_SECTOR) == bytes(3 * LOG_SECTOR)
        assert reader.read(2 * MiB, MiB) == bytes(MiB)
    ours = convert(dirty, tmp_path / "ours.raw", DiskFormat.RAW)
    assert sha256(dirty) == before  # nothing was written to the file
    assert ours.content_hash != hash_disk(clean_vhdx).content_hash  # the log did change the disk

    replayed = tmp_path / "replayed.vhdx"  # qemu replays a copy for real
    shutil.copyfile(dirty, replayed)
    subprocess.run(["qemu-img", "check", "-r", "all", "-f", "vhdx", str(replayed)], check=True, capture_output=True)
    assert sha256(replayed) != before
    assert qemu_compare(tmp_path / "ours.raw", "raw", replayed, "vhdx").returncode == 0
    assert hash_disk(replayed).content_hash == ours.content_hash


def test_a_torn_log_entry_is_not_replayed(clean_vhdx: Path, tmp_path: Path) -> None:
    """An entry whose CRC fails was never completely written: the file reads as it is (qemu agrees)."""
    _bat, blocks = _layout(clean_vhdx)
    guid = uuid.uuid4().bytes_le
    entry = bytearray(log_entry(3, guid, clean_vhdx.stat().st_size, [("zero", blocks[0], MiB)]))
    entry[100] ^= 1
    dirty = with_log(clean_vhdx, tmp_path / "torn.vhdx", [bytes(entry)], guid)
    assert hash_disk(dirty).content_hash == hash_disk(clean_vhdx).content_hash
    theirs = tmp_path / "theirs.raw"
    subprocess.run(["qemu-img", "convert", "-f", "vhdx", "-O", "raw", str(dirty), str(theirs)], check=True)
    assert hash_disk(theirs, source_format=DiskFormat.RAW).content_hash == hash_disk(dirty).content_hash


def test_a_log_entry_with_a_wrong_data_sequence_is_refused(clean_vhdx: Path, tmp_path: Path) -> None:
    _bat, blocks = _layout(clean_vhdx)
    guid = uuid.uuid4().bytes_le
    entry = bytearray(log_entry(5, guid, clean_vhdx.stat().st_size, [("desc", blocks[0], bytes(LOG_SECTOR))]))
    struct.pack_into("<I", entry, LOG_SECTOR + 4092, 6)  # the data sector says sequence 6, the entry 5
    struct.pack_into("<I", entry, 4, 0)
    struct.pack_into("<I", entry, 4, crc32c(bytes(entry)))
    dirty = with_log(clean_vhdx, tmp_path / "bad.vhdx", [bytes(entry)], guid)
    with pytest.raises(FormatError, match=f"VHDX log data sector at offset {LOG_OFFSET + LOG_SECTOR}"):
        open_disk(dirty)
    assert subprocess.run(["qemu-img", "info", "-f", "vhdx", str(dirty)], capture_output=True).returncode != 0
