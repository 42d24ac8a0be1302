"""Every format qemu-img writes, read and converted by imageport into every format we
write, judged by ``qemu-img compare`` with explicit formats; our hashes checked against
a plain SHA-256 of the raw source."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imageport.disks.convert import convert, hash_disk
from imageport.disks.detect import detect_format, open_disk
from imageport.disks.vmdk import extents as vmdk_extents
from imageport.errors import FormatError
from imageport.models import DiskFormat
from tests.core.disks.images import (
    QEMU_READS,
    QEMU_WRITES,
    MiB,
    content_hash_file,
    libvhdi_sha256,
    make_raw,
    qemu_compare,
    qemu_convert,
    qemu_map_data,
    sha256_file,
)

# 70 MiB + 3 sectors: not a multiple of the VHD block (2 MiB), VHDX block, VMDK grain (64 KiB) or GT span.
ODD_SIZE = 70 * MiB + 3 * 512


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_raw(tmp_path_factory.mktemp("src") / "src.raw", ODD_SIZE, runs=12, seed=7)


@pytest.fixture(scope="module")
def qemu_images(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("qemu")
    return {kind: qemu_convert(source, out / f"q-{kind}.img", kind) for kind in QEMU_WRITES}


@pytest.mark.parametrize("kind", sorted(QEMU_WRITES))
def test_imageport_reads_what_qemu_writes(kind: str, source: Path, qemu_images: dict[str, Path]) -> None:
    result = hash_disk(qemu_images[kind])
    assert result.virtual_size == ODD_SIZE or kind.startswith("vhd-")  # VHD rounds to CHS/sector rules
    assert result.content_hash == content_hash_file(source, pad_to=result.virtual_size)
    # Our map covers every non-zero byte (else the hash above would differ) and never claims more
    # than qemu's; where qemu tracks allocation itself (sparse formats) the two agree exactly.
    # (Not VHD: qemu's map counts a whole block, ours leaves out the file's holes inside it.)
    qemu_data = qemu_map_data(qemu_images[kind], QEMU_WRITES[kind][2])
    assert result.source_allocated <= qemu_data
    if kind in ("vmdk-stream", "vmdk-sparse", "vmdk-split-sparse"):
        assert result.source_allocated == qemu_data


@pytest.mark.parametrize("out_fmt", sorted(QEMU_READS))
@pytest.mark.parametrize("kind", sorted(QEMU_WRITES))
def test_every_direction_is_identical_by_qemu_img(
    kind: str, out_fmt: str, source: Path, qemu_images: dict[str, Path], tmp_path: Path
) -> None:
    dst = tmp_path / f"out.{out_fmt}"
    result = convert(qemu_images[kind], dst, DiskFormat(out_fmt))
    verdict = qemu_compare(qemu_images[kind], QEMU_WRITES[kind][2], dst, QEMU_READS[out_fmt])
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert "identical" in verdict.stdout
    assert result.content_hash == content_hash_file(source, pad_to=result.virtual_size)
    assert [p.name for p in tmp_path.iterdir()] == [dst.name]  # no temporary left behind
    assert detect_format(str(dst)) is DiskFormat(out_fmt)


@pytest.mark.parametrize("out_fmt", ["vhdx", "vmdk-stream", "vmdk-sparse"])
def test_qemu_img_check_passes_on_what_we_write(out_fmt: str, source: Path, tmp_path: Path) -> None:
    dst = tmp_path / f"out.{out_fmt}"
    convert(source, dst, DiskFormat(out_fmt))
    check = subprocess.run(["qemu-img", "check", "-f", QEMU_READS[out_fmt], str(dst)], capture_output=True, text=True)
    assert check.returncode == 0 and "No errors" in check.stdout, check.stdout + check.stderr


def test_fixed_vhd_is_azure_conformant(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "azure.vhd"
    convert(source, dst, DiskFormat.VHD)
    size = dst.stat().st_size
    assert (size - 512) % MiB == 0 and size - 512 >= ODD_SIZE  # N MiB + 512
    footer = dst.read_bytes()[-512:]
    assert footer[:8] == b"conectix" and footer[60:64] == (2).to_bytes(4, "big")
    info = subprocess.run(["qemu-img", "info", "-f", "vpc", str(dst)], capture_output=True, text=True).stdout
    assert f"({size - 512} bytes)" in info


def test_holes_stay_holes_in_every_output(source: Path, tmp_path: Path) -> None:
    for fmt in ("raw", "vhd", "vhdx", "vhd-dynamic", "vmdk-sparse"):
        dst = tmp_path / f"h.{fmt}"
        convert(source, dst, DiskFormat(fmt))
        assert dst.stat().st_blocks * 512 < ODD_SIZE // 2, fmt


@pytest.mark.parametrize(("logical", "block"), [(512, 32 * MiB), (4096, 8 * MiB), (512, 1 * MiB)])
def test_vhdx_sector_and_block_sizes(logical: int, block: int, source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "s.vhdx"
    size = -(-ODD_SIZE // logical) * logical
    convert(source, dst, DiskFormat.VHDX, size=size, logical_sector=logical, block_size=block)
    with open_disk(dst) as reader:
        assert reader.details()["logical_sector_size"] == logical and reader.details()["block_size"] == block
    # qemu-img cannot open 4096-byte-sector VHDX at all; libvhdi judges every case.
    assert libvhdi_sha256(dst) == (size, sha256_file(source, pad_to=size))
    if logical == 512:
        verdict = qemu_compare(source, "raw", dst, "vhdx")
        assert verdict.returncode == 0, verdict.stdout + verdict.stderr


def test_a_raw_source_not_a_multiple_of_512(tmp_path: Path) -> None:
    src = make_raw(tmp_path / "odd.raw", 3 * MiB + 100, runs=3, seed=3, max_run=MiB)
    with open(src, "r+b") as f:  # data right up to the last byte
        f.seek(3 * MiB + 90)
        f.write(b"0123456789")
    dst = tmp_path / "odd.vhdx"
    with pytest.raises(FormatError, match="not a multiple of 512"):  # a truncated container, unless stated raw
        convert(src, dst, DiskFormat.VHDX)
    result = convert(src, dst, DiskFormat.VHDX, source_format=DiskFormat.RAW)
    assert result.virtual_size == 3 * MiB + 512
    assert result.content_hash == content_hash_file(src, pad_to=3 * MiB + 512)
    with open_disk(dst) as reader:
        assert reader.read(3 * MiB + 90, 10) == b"0123456789"


def test_growing_on_convert_pads_with_zeros(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "big.vhdx"
    result = convert(source, dst, DiskFormat.VHDX, size=128 * MiB)
    assert result.virtual_size == 128 * MiB
    assert qemu_compare(source, "raw", dst, "vhdx").returncode == 0


@pytest.mark.parametrize("span_limit", [0, 8 * MiB])
def test_compressed_grains_read_batched_or_one_by_one_agree(
    span_limit: int, source: Path, qemu_images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A piece's compressed grains are read in one span and inflated on two threads; grains too
    far apart for one span (here: every grain, with a span limit of 0) are read one by one."""
    monkeypatch.setattr(vmdk_extents, "SPAN_LIMIT", span_limit)
    with open_disk(qemu_images["vmdk-stream"]) as reader:
        assert reader.read(0, ODD_SIZE) == source.read_bytes()  # one read over every grain
    assert hash_disk(qemu_images["vmdk-stream"]).content_hash == content_hash_file(source)
