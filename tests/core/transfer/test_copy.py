"""copy_image over a share whose connection drops: reconnect, resume, identical result."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageport.disks.convert import hash_disk
from imageport.disks.local_files import LOCAL
from imageport.errors import FormatError
from imageport.models import DiskFormat
from imageport.storage.smb_files import SmbFileSystem
from imageport.transfer.copy import copy_image
from tests.core.disks.images import Interrupted, MiB, interrupt_after, make_raw, qemu_compare, qemu_convert
from tests.infra.configs import samba_share
from tests.infra.tcp_proxy import CuttingProxy

pytestmark = pytest.mark.integration


def share_fs(samba, port: int, folder: str) -> SmbFileSystem:  # type: ignore[no-untyped-def]
    config = samba_share(samba, f"copy/{folder}", port=port)
    return SmbFileSystem(config.build())


def test_reading_from_a_share_survives_a_dropped_session(samba, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw = make_raw(tmp_path / "src.raw", 96 * MiB, runs=20, seed=6, max_run=8 * MiB)
    setup = share_fs(samba, samba.port, "read-drop")
    setup.share.makedirs("")
    src_vhdx = qemu_convert(raw, tmp_path / "src.vhdx", "vhdx-dynamic")
    sink = setup.open_sink("src.vhdx")
    sink.pwrite(0, src_vhdx.read_bytes())
    sink.commit()
    setup.close()

    proxy = CuttingProxy(samba.port, cut_after=40 * MiB, count_replies=True)  # replies carry the data read
    fs = share_fs(samba, proxy.port, "read-drop")
    try:
        result = copy_image("src.vhdx", fs, str(tmp_path / "out.vhdx"), LOCAL, DiskFormat.VHDX, checkpoint_seconds=0)
    finally:
        fs.close()
        proxy.close()
    assert result.attempts >= 2 and proxy.cuts == 1
    assert result.content_hash == hash_disk(raw).content_hash
    assert qemu_compare(raw, "raw", tmp_path / "out.vhdx", "vhdx").returncode == 0
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_a_bad_source_is_not_retried(tmp_path: Path) -> None:
    (tmp_path / "junk.vhdx").write_bytes(b"vhdxfile" + bytes(1 << 20))
    slept: list[float] = []
    with pytest.raises(FormatError):
        copy_image(str(tmp_path / "junk.vhdx"), LOCAL, str(tmp_path / "o.vhdx"), LOCAL, DiskFormat.VHDX,
                   sleep=slept.append)  # fmt: skip
    assert slept == [] and not (tmp_path / "o.vhdx").exists()


def edit_on_share(fs: SmbFileSystem, path: str, offset: int, data: bytes) -> None:
    """Change bytes of a file on the share in place (same size), as a PVS admin's tool would."""
    import smbclient

    with smbclient.open_file(fs.share.unc(path), mode="r+b", **fs.share.io_options()) as f:
        f.seek(offset)
        f.write(data)


def put_on_share(fs: SmbFileSystem, raw: Path, tmp_path: Path) -> None:
    vhdx = qemu_convert(raw, tmp_path / "src.vhdx", "vhdx-dynamic")
    sink = fs.open_sink("src.vhdx", overwrite=True)
    sink.pwrite(0, vhdx.read_bytes())
    sink.commit()


def first_data_in_file(fs: SmbFileSystem, path: str) -> int:
    """Where in a VHDX file its first allocated virtual byte is stored."""
    from imageport.disks.vhdx import VhdxReader

    with VhdxReader(path, fs) as reader:
        first = next(iter(reader.extents()))
        return (reader.bat[first.offset // reader.block_size] >> 20) * MiB + first.offset % reader.block_size


def test_a_source_edited_on_the_share_before_the_resume_is_copied_afresh(samba, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw = make_raw(tmp_path / "src.raw", 64 * MiB, runs=12, seed=21, max_run=8 * MiB)
    fs = share_fs(samba, samba.port, "edited")
    fs.share.makedirs("")
    try:
        put_on_share(fs, raw, tmp_path)
        with pytest.raises(Interrupted):
            copy_image("src.vhdx", fs, "out.vhdx", fs, DiskFormat.VHDX, overwrite=True, checkpoint_seconds=0,
                       progress=interrupt_after(24 * MiB))  # fmt: skip
        assert fs.isfile("out.vhdx.imageport-partial")  # a checkpointed partial output, for a resume
        old_hash = hash_disk("src.vhdx", fs=fs).content_hash
        edit_on_share(fs, "src.vhdx", first_data_in_file(fs, "src.vhdx"), b"\xa5" * 4096)  # same size, in place
        new_hash = hash_disk("src.vhdx", fs=fs).content_hash
        assert new_hash != old_hash

        result = copy_image("src.vhdx", fs, "out.vhdx", fs, DiskFormat.VHDX, overwrite=True)
        assert result.content_hash == new_hash and not result.resumed
        assert hash_disk("out.vhdx", fs=fs).content_hash == new_hash  # what the target holds
        assert result.restarted is not None and "the source changed" in result.restarted
    finally:
        fs.close()


def test_the_share_names_the_version_of_a_file_in_its_fingerprint(samba, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from imageport.disks.detect import open_disk
    from imageport.disks.fingerprint import fingerprint

    raw = make_raw(tmp_path / "src.raw", 16 * MiB, runs=3, seed=22, max_run=2 * MiB)
    fs = share_fs(samba, samba.port, "stamp")
    fs.share.makedirs("")
    try:
        put_on_share(fs, raw, tmp_path)
        with open_disk("src.vhdx", fs=fs) as reader:
            before = fingerprint(reader)
        stamp = before.links[0].files[0]
        assert set(stamp) == {"size", "last_write", "change", "file_id"} and stamp["file_id"]
        assert before.links[0].markers["vhdx_data_write_guid"]
        with open_disk("src.vhdx", fs=fs) as reader:
            assert fingerprint(reader) == before  # reading is not an edit
        edit_on_share(fs, "src.vhdx", first_data_in_file(fs, "src.vhdx"), b"\x5a" * 512)
        with open_disk("src.vhdx", fs=fs) as reader:
            after = fingerprint(reader)
        assert after.links[0].files[0]["size"] == stamp["size"]  # same size...
        assert after != before and "last_write" in after.differences(before)  # ...another version
    finally:
        fs.close()
