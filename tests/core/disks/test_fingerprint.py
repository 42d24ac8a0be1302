"""The source fingerprint changes on any edit: file stamps, container change markers, metadata."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from imageport.disks import vhd
from imageport.disks.convert import convert
from imageport.disks.detect import open_disk
from imageport.disks.fingerprint import SourceFingerprint, fingerprint
from imageport.disks.vhdx import HEADER_OFFSETS
from imageport.disks.vhdx.layout import _with_crc
from imageport.models import DiskFormat
from tests.core.disks.images import MiB, make_raw

FORMATS = [DiskFormat.RAW, DiskFormat.VHD, DiskFormat.VHD_DYNAMIC, DiskFormat.VHDX, DiskFormat.VMDK_SPARSE]


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return make_raw(tmp_path / "src.raw", 8 * MiB, runs=3, seed=5, max_run=MiB)


def fp(path: Path) -> SourceFingerprint:
    with open_disk(path) as reader:
        return fingerprint(reader)


def edit_in_place_keeping_mtime(path: Path, offset: int, data: bytes) -> None:
    """Same size, same modification time: what a careless tool (or `touch -r`) leaves behind."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.value)
def test_an_unchanged_image_has_a_stable_fingerprint_and_any_edit_changes_it(
    raw: Path, tmp_path: Path, fmt: DiskFormat
) -> None:
    image = tmp_path / f"img.{fmt.value}"
    convert(raw, image, fmt)
    before = fp(image)
    assert fp(image) == before and before.digest == fp(image).digest  # reopening is not an edit
    assert before.links[0].files[0]["size"] == image.stat().st_size and "ino" in before.links[0].files[0]
    edit_in_place_keeping_mtime(image, os.stat(image).st_size // 2, os.urandom(16))
    after = fp(image)
    assert after != before and after.digest != before.digest
    assert "ctime_ns" in after.differences(before)  # the inode change time cannot be set back


def test_vhdx_data_write_guid_is_a_change_marker(raw: Path, tmp_path: Path) -> None:
    image = tmp_path / "img.vhdx"
    convert(raw, image, DiskFormat.VHDX)
    before = fp(image)
    new_guid = uuid.uuid4().bytes_le
    with open(image, "r+b") as f:  # what Hyper-V does on its first write after opening: a new DataWriteGuid
        for offset in HEADER_OFFSETS:
            f.seek(offset)
            block = bytearray(f.read(4096))
            block[32:48] = new_guid
            f.seek(offset)
            f.write(_with_crc(bytes(block)))
    after = fp(image)
    assert after.links[0].markers["vhdx_data_write_guid"] == str(uuid.UUID(bytes_le=new_guid))
    assert "vhdx_data_write_guid" in after.differences(before)


def test_vhd_footer_timestamp_and_checksum_are_change_markers(raw: Path, tmp_path: Path) -> None:
    image = tmp_path / "img.vhd"
    convert(raw, image, DiskFormat.VHD)
    before = fp(image)
    size = image.stat().st_size
    with open(image, "r+b") as f:
        f.seek(size - 512)
        footer = bytearray(f.read(512))
        footer[24:28] = (int.from_bytes(footer[24:28], "big") + 60).to_bytes(4, "big")  # a minute later
        footer[64:68] = vhd.checksum(bytes(footer), 64).to_bytes(4, "big")
        f.seek(size - 512)
        f.write(footer)
    after = fp(image)
    assert after.links[0].markers["vhd_timestamp"] != before.links[0].markers["vhd_timestamp"]
    assert "vhd_checksum" in after.differences(before) and "vhd_timestamp" in after.differences(before)


def test_vmdk_cid_is_a_change_marker(raw: Path, tmp_path: Path) -> None:
    image = tmp_path / "img.vmdk"
    convert(raw, image, DiskFormat.VMDK_SPARSE)
    before = fp(image)
    cid = before.links[0].markers["vmdk_cid"]
    data = image.read_bytes()
    at = data.index(f"CID={cid}".encode())
    other = f"{(int(cid, 16) + 1) & 0xFFFFFFFF:08x}"
    with open(image, "r+b") as f:  # what VMware does when the disk is written: a new content id
        f.seek(at + 4)
        f.write(other.encode())
    after = fp(image)
    assert after.links[0].markers["vmdk_cid"] == other
    assert "vmdk_cid" in after.differences(before)


def test_a_differencing_disk_is_fingerprinted_with_its_parent(tmp_path: Path) -> None:
    from tests.core.disks.test_differencing import make_vhd_child

    parent, child, _ = make_vhd_child(tmp_path)
    before = fp(child)
    assert [link.path for link in before.links] == [str(child), str(parent)]
    edit_in_place_keeping_mtime(parent, 4096, os.urandom(8))  # the parent changes: so does the child's source
    assert fp(child) != before and str(parent) in fp(child).differences(before)
