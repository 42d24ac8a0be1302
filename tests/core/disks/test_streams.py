"""One-pass decoding of streamOptimized VMDKs from a real pipe (no seeking), as an NFC
export download arrives; and large virtual disks with little data."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest

from imageport.disks.convert import convert, convert_stream
from imageport.errors import FormatError
from imageport.models import DiskFormat
from tests.core.disks.images import MiB, content_hash_file, make_raw, qemu_compare, qemu_convert


@contextmanager
def piped(path: Path, limit: int | None = None) -> Iterator[BinaryIO]:
    """The file through ``cat`` (optionally only its first ``limit`` bytes): a non-seekable stream."""
    cmd = ["cat", str(path)] if limit is None else ["head", "-c", str(limit), str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        assert not proc.stdout.seekable()
        yield proc.stdout
    finally:
        proc.stdout.close()
        proc.wait()


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("streams")
    raw = make_raw(d / "src.raw", 50 * MiB + 7 * 512, runs=6, seed=5, max_run=2 * MiB)
    ours = d / "ours.vmdk"
    convert(raw, ours, DiskFormat.VMDK_STREAM)
    return {"raw": raw, "ours": ours, "qemu": qemu_convert(raw, d / "qemu.vmdk", "vmdk-stream")}


@pytest.mark.parametrize("maker", ["ours", "qemu"])
@pytest.mark.parametrize("out_fmt", ["vhdx", "vhd"])
def test_a_stream_converts_in_one_pass(maker: str, out_fmt: str, streams: dict[str, Path], tmp_path: Path) -> None:
    dst = tmp_path / f"s.{out_fmt}"
    with piped(streams[maker]) as stream:
        result = convert_stream(stream, dst, DiskFormat(out_fmt), name=maker)
    assert result.content_hash == content_hash_file(streams["raw"], pad_to=result.virtual_size)
    verdict = qemu_compare(streams["raw"], "raw", dst, "vhdx" if out_fmt == "vhdx" else "vpc")
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr


@pytest.mark.parametrize("maker", ["ours", "qemu"])
@pytest.mark.parametrize("fraction", [0.3, 0.97])
def test_a_stream_cut_short_is_refused_and_leaves_nothing(
    maker: str, fraction: float, streams: dict[str, Path], tmp_path: Path
) -> None:
    size = streams[maker].stat().st_size
    with piped(streams[maker], limit=int(size * fraction)) as stream, pytest.raises(FormatError, match="cut short"):
        convert_stream(stream, tmp_path / "x.vhdx", DiskFormat.VHDX, name=maker)
    assert list(tmp_path.iterdir()) == []


def test_a_stream_cut_exactly_after_a_grain_is_refused(streams: dict[str, Path], tmp_path: Path) -> None:
    # Our (VMware-layout) stream cut right before its grain tables: every record complete, EOS missing.
    data = streams["ours"].read_bytes()
    gt_marker = data.index((4).to_bytes(8, "little") + bytes(4) + (1).to_bytes(4, "little"))
    cut = tmp_path / "cut.vmdk"
    cut.write_bytes(data[:gt_marker])
    with open(cut, "rb") as stream, pytest.raises(FormatError, match="without an end-of-stream marker"):
        convert_stream(stream, tmp_path / "x.vhdx", DiskFormat.VHDX)


def test_disks_larger_than_4_gib_with_little_data(tmp_path: Path) -> None:
    size = 5 * 1024 * MiB + 64 * 1024
    raw = tmp_path / "big.raw"
    with open(raw, "wb") as f:
        f.truncate(size)
        for off in (0, 4 * 1024 * MiB - 4096, 4 * 1024 * MiB + 12345 * 512, size - 8192):
            f.seek(off)
            f.write(bytes(range(256)) * 16)
    expected = content_hash_file(raw)
    for kind, out_fmt, qfmt in (
        ("vhdx-dynamic", "vmdk-stream", "vmdk"),
        ("vmdk-stream", "vhd-dynamic", "vpc"),
        ("vhd-dynamic", "vhdx", "vhdx"),
    ):
        src = qemu_convert(raw, tmp_path / f"q-{kind}", kind)
        dst = tmp_path / f"o-{kind}.{out_fmt}"
        result = convert(src, dst, DiskFormat(out_fmt))
        assert result.content_hash == expected and result.source_allocated < 64 * MiB
        assert qemu_compare(raw, "raw", dst, qfmt).returncode == 0
