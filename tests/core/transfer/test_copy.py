"""copy_image over a share whose connection drops: reconnect, resume, identical result."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageport.disks.base import LOCAL
from imageport.disks.convert import hash_disk
from imageport.errors import FormatError
from imageport.models import DiskFormat
from imageport.storage.smb_files import SmbFileSystem
from imageport.transfer.copy import copy_image
from tests.core.disks.images import MiB, make_raw, qemu_compare, qemu_convert
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
