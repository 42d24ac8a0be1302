"""The disk engine reading and writing image files on the suite's real Samba share."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from imageport.disks.convert import convert, hash_disk
from imageport.errors import FormatError, InputError
from imageport.models import DiskFormat
from imageport.storage.smb_files import SmbFileSystem
from tests.core.disks.images import MiB, content_hash_file, make_raw, qemu_compare, qemu_convert
from tests.infra.configs import samba_share

pytestmark = pytest.mark.integration


@pytest.fixture()
def share(samba, request):  # type: ignore[no-untyped-def]
    """A file system on the share, under a folder of its own; yields (fs, folder on the server's disk)."""
    folder = request.node.name.replace("[", "-").replace("]", "")
    config = samba_share(samba, f"img/{folder}", encrypt="encrypt" in folder)
    config.build().check()  # creates the base folder
    fs = SmbFileSystem(config.build())
    yield fs, Path(samba.info["share_dir"]) / "img" / folder
    fs.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_raw(tmp_path_factory.mktemp("smbsrc") / "src.raw", 48 * MiB + 3 * 512, runs=6, seed=21, max_run=5 * MiB)


@pytest.mark.parametrize("fmt", ["vhdx", "vhd", "vmdk-stream"])
def test_convert_onto_the_share(fmt: str, share, source: Path) -> None:  # type: ignore[no-untyped-def]
    fs, on_disk = share
    fs.share.makedirs(fmt)
    result = convert(source, f"{fmt}/gold.img", DiskFormat(fmt), output_fs=fs)
    assert result.content_hash == content_hash_file(source, pad_to=result.virtual_size)
    written = on_disk / fmt / "gold.img"
    qfmt = {"vhdx": "vhdx", "vhd": "vpc", "vmdk-stream": "vmdk"}[fmt]
    verdict = qemu_compare(source, "raw", written, qfmt)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert os.listdir(on_disk / fmt) == ["gold.img"]  # nothing left under a temporary name


def test_encrypted_session_round_trip(share, source: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fs, _ = share
    assert fs.share.config.encrypt
    up = convert(source, "gold.vhdx", DiskFormat.VHDX, output_fs=fs)
    down = convert("gold.vhdx", tmp_path / "back.raw", DiskFormat.RAW, source_fs=fs)
    assert up.content_hash == down.content_hash == content_hash_file(source, pad_to=up.virtual_size)


def test_read_images_off_the_share_including_multi_file_vmdk(share, source: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fs, on_disk = share
    made = qemu_convert(source, tmp_path / "split.vmdk", "vmdk-split-sparse")
    for f in tmp_path.iterdir():
        if f.name.startswith("split"):
            shutil.copy(f, on_disk / f.name)  # descriptor + -s001.. extents, side by side
    assert len([p for p in os.listdir(on_disk) if p.startswith("split")]) >= 2
    assert hash_disk("split.vmdk", fs=fs).content_hash == content_hash_file(source)
    out = tmp_path / "local.vhdx"
    convert("split.vmdk", out, DiskFormat.VHDX, source_fs=fs)
    assert qemu_compare(made, "vmdk", out, "vhdx").returncode == 0


def test_refuses_to_overwrite_and_needs_the_folder(share, source: Path) -> None:  # type: ignore[no-untyped-def]
    fs, on_disk = share
    convert(source, "one.vhdx", DiskFormat.VHDX, output_fs=fs)
    with pytest.raises(InputError, match="exists already"):
        convert(source, "one.vhdx", DiskFormat.VHDX, output_fs=fs)
    replaced = convert(source, "one.vhdx", DiskFormat.VHDX, output_fs=fs, overwrite=True)
    assert sorted(os.listdir(on_disk)) == ["one.vhdx"]  # the old one moved aside, then deleted
    assert hash_disk("one.vhdx", fs=fs).content_hash == replaced.content_hash
    with pytest.raises(InputError, match="no such folder"):
        convert(source, "missing/one.vhdx", DiskFormat.VHDX, output_fs=fs)


def test_a_failed_conversion_leaves_nothing_on_the_share(share, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fs, on_disk = share
    bad = qemu_convert(make_raw(tmp_path / "r.raw", 16 * MiB, runs=3, seed=2), tmp_path / "s.vmdk", "vmdk-stream")
    with open(bad, "r+b") as f:
        f.truncate(int(bad.stat().st_size * 0.6))
    with pytest.raises(FormatError):
        convert(bad, "broken.vhdx", DiskFormat.VHDX, output_fs=fs)
    assert os.listdir(on_disk) == []


def test_many_signed_writes_in_flight_land_byte_identical(share) -> None:  # type: ignore[no-untyped-def]
    """Payloads sent straight from the caller's buffer (``smb_wire``), several requests in flight,
    a signed session: the file on the server's disk is exactly what was written, and the buffer
    may be overwritten as soon as a write returns."""
    fs, on_disk = share
    data = os.urandom(19 * MiB + 4321)
    sink = fs.open_sink("direct.bin")
    assert sink.fd.tree_connect.session.signing_required  # the signed path is the one exercised
    reused = bytearray(9 * MiB)
    for start, end in ((0, 9 * MiB), (9 * MiB, 18 * MiB), (18 * MiB, len(data))):
        reused[: end - start] = data[start:end]
        sink.pwrite(start, memoryview(reused)[: end - start])
    sink.commit()
    assert (on_disk / "direct.bin").read_bytes() == data
