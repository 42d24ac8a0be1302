"""copy_image over a share whose connection drops: reconnect, resume, identical result."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageport.disks.convert import hash_disk
from imageport.disks.local_files import LOCAL
from imageport.errors import FormatError, StorageUnreachable
from imageport.models import DiskFormat
from imageport.storage.smb_files import SmbFileSystem
from imageport.transfer.copy import COPY_RETRY, copy_image
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


class DroppingFileSystem(type(LOCAL)):  # type: ignore[misc]
    """Local files whose connection "drops" after ``after`` bytes of every pass, until ``passes`` passes
    (-1: always); counts the reconnects the copy asks for."""

    def __init__(self, after: int, passes: int) -> None:
        self.after, self.passes, self.reconnects, self.started = after, passes, 0, 0

    def reconnect(self) -> None:
        self.reconnects += 1

    def progress(self, done: int, total: int) -> None:
        if done >= self.after and (self.passes < 0 or self.started <= self.passes):
            raise StorageUnreachable(f"pass {self.started}: the connection dropped at {done} of {total}")

    def open_sink(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.started += 1
        return super().open_sink(*args, **kwargs)


def test_a_transient_fault_is_retried_once_by_the_policy_and_the_copy_completes(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "src.raw", 24 * MiB, runs=6, seed=30, max_run=4 * MiB)
    fs = DroppingFileSystem(after=8 * MiB, passes=1)
    slept: list[float] = []
    result = copy_image(str(raw), LOCAL, str(tmp_path / "out.vhdx"), fs, DiskFormat.VHDX, checkpoint_seconds=0,
                        progress=fs.progress, sleep=slept.append)  # fmt: skip
    assert result.attempts == 2 and fs.reconnects == 1 and slept == COPY_RETRY.schedule()[:1]
    assert result.resumed and result.content_hash == hash_disk(raw).content_hash


def test_a_persistent_fault_ends_after_the_policys_attempts_marked_as_given_up(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "src.raw", 24 * MiB, runs=6, seed=31, max_run=4 * MiB)
    fs = DroppingFileSystem(after=8 * MiB, passes=-1)
    slept: list[float] = []
    with pytest.raises(StorageUnreachable, match="gave up after 4 attempts") as failed:
        copy_image(str(raw), LOCAL, str(tmp_path / "out.vhdx"), fs, DiskFormat.VHDX, checkpoint_seconds=0,
                   progress=fs.progress, sleep=slept.append)  # fmt: skip
    # counted, not timed: the policy's attempts, its waits (within its deadline), one login per retry
    assert fs.started == COPY_RETRY.attempts == failed.value.attempts == 4 and failed.value.core_gave_up
    assert slept == COPY_RETRY.schedule() == [1.0, 4.0, 15.0]
    assert fs.reconnects == 3 and not (tmp_path / "out.vhdx").exists()


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
