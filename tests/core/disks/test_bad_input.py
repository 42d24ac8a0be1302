"""Damaged and hostile images give a FormatError naming file, structure and offset:
never a crash, a hang, an unbounded allocation or a silently wrong result."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imageport.disks.convert import convert, hash_disk
from imageport.disks.detect import open_disk
from imageport.errors import FormatError, InputError
from imageport.models import DiskFormat
from tests.core.disks.images import MiB, content_hash_file, make_raw, qemu_compare, qemu_convert


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    raw = make_raw(d / "src.raw", 6 * MiB, runs=4, seed=11, max_run=MiB)
    out = {"raw": raw}
    for fmt in ("vhd-dynamic", "vhdx", "vmdk-stream", "vmdk-sparse"):
        options = {"block_size": MiB} if fmt == "vhdx" else {}
        out[fmt] = d / f"ok.{fmt}"
        convert(raw, out[fmt], DiskFormat(fmt), **options)
    out["qemu-stream"] = qemu_convert(raw, d / "q.vmdk", "vmdk-stream")
    out["vhd"] = qemu_convert(raw, d / "fixed.vhd", "vhd-fixed")
    (d / "flat").mkdir()
    out["vmdk-flat"] = qemu_convert(raw, d / "flat" / "disk.vmdk", "vmdk-flat")  # descriptor + disk-flat.vmdk
    return out


def damaged(tmp_path: Path, src: Path, patches: dict[int, bytes] | None = None, size: int | None = None) -> Path:
    dst = tmp_path / f"bad-{src.name}"
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        for offset, data in (patches or {}).items():
            f.seek(offset if offset >= 0 else dst.stat().st_size + offset)
            f.write(data)
        if size is not None:
            f.truncate(size)
    return dst


def fails(path: Path, fmt: DiskFormat | None, *fragments: str) -> FormatError:
    with pytest.raises(FormatError) as info, open_disk(path, fmt) as reader:
        hash_disk(path, source_format=fmt)
        reader.read(0, 512)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


@pytest.mark.parametrize("fmt", ["vhd-dynamic", "vhdx", "vmdk-stream", "vmdk-sparse"])
@pytest.mark.parametrize("fraction", [0.0002, 0.1, 0.5, 0.9, 0.9999])
def test_truncated_images_are_refused(fmt: str, fraction: float, images: dict[str, Path], tmp_path: Path) -> None:
    src = images[fmt]
    fails(damaged(tmp_path, src, size=int(src.stat().st_size * fraction)), DiskFormat(fmt))


@pytest.mark.parametrize(
    ("fmt", "offset", "structure"),
    [
        ("vhdx", 0, "VHDX file identifier"),
        ("vmdk-sparse", 0, "VMDK sparse header"),
        ("vhd-dynamic", -512, "VHD footer"),
    ],
)
def test_wrong_magic_with_a_forced_format(
    fmt: str, offset: int, structure: str, images: dict[str, Path], tmp_path: Path
) -> None:
    path = damaged(tmp_path, images[fmt], {offset: b"XXXX"})
    if fmt == "vhd-dynamic":  # the copy at offset 0 still identifies it: damage both
        path = damaged(tmp_path, path, {0: b"XXXX"})
    fails(path, DiskFormat(fmt), structure)


def test_vhd_footer_checksum(images: dict[str, Path], tmp_path: Path) -> None:
    fails(
        damaged(tmp_path, images["vhd-dynamic"], {0: b"conectix\0\0\0\x03", -512: b"conectix\0\0\0\x03"}),
        None,
        "VHD footer",
        "checksum",
    )


def test_vhdx_bad_crc_in_both_headers_and_region_tables(images: dict[str, Path], tmp_path: Path) -> None:
    fails(
        damaged(tmp_path, images["vhdx"], {64 * 1024 + 100: b"\x01", 128 * 1024 + 100: b"\x01"}),
        None,
        "VHDX header",
        "offset 65536",
        "CRC-32C",
    )
    fails(
        damaged(tmp_path, images["vhdx"], {192 * 1024 + 100: b"\x01", 256 * 1024 + 100: b"\x01"}),
        None,
        "VHDX region table",
        "CRC-32C",
    )


def test_vhdx_survives_one_bad_header(images: dict[str, Path], tmp_path: Path) -> None:
    path = damaged(tmp_path, images["vhdx"], {64 * 1024 + 100: b"\x01", 192 * 1024 + 100: b"\x01"})
    assert hash_disk(path).content_hash == hash_disk(images["vhdx"]).content_hash


def test_vhdx_naming_a_log_without_entries_reads_as_it_is(images: dict[str, Path], tmp_path: Path) -> None:
    """LogGuid set but no valid entry: nothing to replay (qemu agrees; tests/core/disks/test_vhdx_log.py
    covers logs that hold entries)."""
    from imageport.disks.vhdx import HEADER_OFFSETS
    from imageport.disks.vhdx.layout import _with_crc

    path = damaged(tmp_path, images["vhdx"])
    with open(path, "r+b") as f:
        for off in HEADER_OFFSETS:
            f.seek(off)
            header = bytearray(f.read(4096))
            header[48:64] = b"\x11" * 16  # LogGuid
            f.seek(off)
            f.write(_with_crc(bytes(header)))
    assert hash_disk(path).content_hash == hash_disk(images["vhdx"]).content_hash


def test_vhd_bat_entry_past_eof(images: dict[str, Path], tmp_path: Path) -> None:
    fails(
        damaged(tmp_path, images["vhd-dynamic"], {1536: struct.pack(">I", 0x00FFFFF0)}),
        None,
        "VHD BAT",
        "offset 1536",
        "past the end",
    )


def test_vhdx_bat_entry_past_eof(images: dict[str, Path], tmp_path: Path) -> None:
    fails(
        damaged(tmp_path, images["vhdx"], {3 * MiB: struct.pack("<Q", (4000 << 20) | 6)}),
        None,
        "VHDX BAT",
        f"offset {3 * MiB}",
        "outside the file",
    )


def test_absurd_sizes(images: dict[str, Path], tmp_path: Path) -> None:
    fails(
        damaged(tmp_path, images["vmdk-sparse"], {0x0C: struct.pack("<Q", 1 << 62)}),
        None,
        "VMDK sparse header",
        "64 TiB",
    )
    vhdx_size_item = 2 * MiB + 64 * 1024 + 8  # second metadata item: virtual disk size
    fails(damaged(tmp_path, images["vhdx"], {vhdx_size_item: struct.pack("<Q", 1 << 60)}), None, "64 TiB")


def test_grain_table_pointing_anywhere(images: dict[str, Path], tmp_path: Path) -> None:
    from imageport.disks.vmdk import HEADER, parse_header

    src = images["vmdk-sparse"]
    h = parse_header(str(src), src.read_bytes()[: HEADER.size], 0)
    gt_sector = struct.unpack_from("<I", src.read_bytes(), h.gd_offset * 512)[0]
    fails(damaged(tmp_path, src, {gt_sector * 512: struct.pack("<I", 0x7FFFFFFF)}), None, "past the end")


def test_a_corrupt_compressed_grain(images: dict[str, Path], tmp_path: Path) -> None:
    data = images["qemu-stream"].read_bytes()
    first_grain = data.index(b"\x78", 65536)  # zlib header of the first grain after the overhead
    fails(damaged(tmp_path, images["qemu-stream"], {first_grain + 2: b"\xff" * 64}), None, "compressed grain")


def test_qcow2_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "x.qcow2"
    path.write_bytes(b"QFI\xfb" + bytes(1020))
    fails(path, None, "qcow2")


def test_missing_file_and_directory_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        open_disk(tmp_path / "none.vhdx")
    with pytest.raises(InputError, match="is a directory"):
        open_disk(tmp_path, DiskFormat.RAW)


def test_a_failed_convert_leaves_nothing_behind(images: dict[str, Path], tmp_path: Path) -> None:
    bad = damaged(tmp_path, images["qemu-stream"], size=int(images["qemu-stream"].stat().st_size * 0.6))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FormatError):
        convert(bad, out / "x.vhdx", DiskFormat.VHDX)
    assert list(out.iterdir()) == []


# --- damaged signatures: refused, never read as raw ----------------------------------------


def flip(tmp_path: Path, src: Path, offset: int, bit: int = 0, name: str | None = None) -> Path:
    """A copy of ``src`` with one bit flipped (``offset`` < 0 counts from the end)."""
    data = bytearray(src.read_bytes())
    data[offset] ^= 1 << bit
    dst = tmp_path / (name or f"flipped-{src.name}")
    dst.write_bytes(data)
    return dst


def test_a_flipped_bit_in_the_descriptor_line_is_refused(images: dict[str, Path]) -> None:
    """The issue's case: '# Disk DescriptorFile' with one bit flipped read as a 512-byte raw disk."""
    src = images["vmdk-flat"]
    bad = flip(src.parent, src, 3, name="bad.vmdk")  # beside its extent, as a user would have it
    error = fails(bad, None, "VMDK descriptor", "offset 0", "damaged '# Disk DescriptorFile'")
    assert "--from raw" in str(error)
    with open_disk(bad, DiskFormat.RAW) as reader:  # stated raw: the user said so
        assert reader.virtual_size == bad.stat().st_size


def test_a_descriptor_qemu_rewrote_shorter_reads_as_qemu_reads_it(images: dict[str, Path]) -> None:
    """qemu rewrites a descriptor in place when it sets the CID and leaves the tail of the longer old
    text behind the NUL (seen with twoGbMaxExtentFlat: ``...3647"\\n\\0\\n\\0...``): that is not damage,
    but a NUL in the middle of a line is."""
    src = images["vmdk-flat"]
    data = bytearray(src.read_bytes())
    end = data.index(b"\0")
    leftover = src.parent / "leftover.vmdk"
    leftover.write_bytes(bytes(data[: end + 1]) + b'7"\n' + bytes(data[end + 4 :]))
    assert hash_disk(leftover).content_hash == hash_disk(src).content_hash
    assert qemu_compare(leftover, "vmdk", src, "vmdk").returncode == 0  # qemu agrees
    cut = data.index(b"\nddb.")  # a NUL inside the ddb.virtualHWVersion line, text after it
    midline = src.parent / "midline.vmdk"
    midline.write_bytes(bytes(data[: cut + 4]) + b"\0" + bytes(data[cut + 5 :]))
    fails(midline, None, "VMDK descriptor", "a NUL byte inside a line")


def test_descriptor_text_without_its_header_line_is_refused(images: dict[str, Path], tmp_path: Path) -> None:
    text = images["vmdk-flat"].read_bytes().replace(b"# Disk DescriptorFile", b"#")
    bad = tmp_path / "nohead.vmdk"
    data = b"\0" + text  # not even starting with the comment
    bad.write_bytes(data)
    # Where the line after CID= starts: qemu writes the random CID without leading zeros, so it moves.
    fails(bad, None, "VMDK descriptor", f"offset {data.index(b'parentCID=')}", "parentCID=")


@pytest.mark.parametrize(
    ("cut", "structure"), [(1, "VHD footer"), (100, "VHD footer"), (511, "file size"), (4096 + 3, "file size")]
)
def test_a_truncated_fixed_vhd_is_refused(cut: int, structure: str, images: dict[str, Path], tmp_path: Path) -> None:
    """Cut inside the footer: its cookie is found short of the end; cut further, the odd size gives it away."""
    src = images["vhd"]
    bad = damaged(tmp_path, src, size=src.stat().st_size - cut)
    fails(bad, None, structure)


def test_a_padded_fixed_vhd_is_refused(images: dict[str, Path], tmp_path: Path) -> None:
    bad = damaged(tmp_path, images["vhd"])
    with open(bad, "ab") as f:
        f.write(bytes(1024))
    size = images["vhd"].stat().st_size
    fails(bad, None, "VHD footer", f"offset {size - 512}", "1536 bytes before the end")


@pytest.mark.parametrize(("offset", "bit", "fragment"), [(-512, 0, "damaged VHD footer cookie"), (-448, 3, "checksum")])
def test_a_damaged_fixed_vhd_footer_is_refused(
    offset: int, bit: int, fragment: str, images: dict[str, Path], tmp_path: Path
) -> None:
    bad = flip(tmp_path, images["vhd"], offset, bit)
    fails(bad, None, "VHD footer", fragment)
    with open_disk(bad, DiskFormat.RAW) as reader:  # stated raw: data and footer, as the bytes they are
        assert reader.virtual_size == bad.stat().st_size


@pytest.mark.parametrize(
    ("fmt", "offset", "structure"),
    [
        ("vhdx", 0, "VHDX file identifier"),
        ("vhdx", 7, "VHDX file identifier"),
        ("vmdk-sparse", 0, "VMDK sparse header"),
        ("vmdk-stream", 3, "VMDK sparse header"),
        ("vhd-dynamic", 0, "VHD footer"),
        ("vhd-dynamic", -512, "VHD footer"),  # the copies at 0 and at the end must agree
    ],
)
def test_a_flipped_bit_in_a_magic_number_is_refused(
    fmt: str, offset: int, structure: str, images: dict[str, Path], tmp_path: Path
) -> None:
    fails(flip(tmp_path, images[fmt], offset, 1), None, structure)


def test_a_size_that_is_not_a_multiple_of_512_is_refused_unless_stated_raw(tmp_path: Path) -> None:
    odd = make_raw(tmp_path / "odd.img", MiB + 7, runs=2, seed=5, max_run=4096)
    fails(odd, None, "file size", f"offset {MiB + 7}", "not a multiple of 512")
    assert hash_disk(odd, source_format=DiskFormat.RAW).content_hash == content_hash_file(odd)


@pytest.mark.parametrize(
    ("fmt", "stated"),
    [("vhdx", DiskFormat.RAW), ("vmdk-sparse", DiskFormat.VHDX), ("raw", DiskFormat.VHD), ("vhd", DiskFormat.RAW)],
)
def test_a_stated_format_that_does_not_match_is_refused(
    fmt: str, stated: DiskFormat, images: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    error = fails(images[fmt], stated, "format", f"expected {stated.value}")
    assert "the content is" in str(error)
    with pytest.raises(FormatError, match=f"expected {stated.value}"):
        convert(images[fmt], out / "x.vhdx", DiskFormat.VHDX, source_format=stated)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(("fmt", "stated"), [("vhd-dynamic", DiskFormat.VHD), ("qemu-stream", DiskFormat.VMDK_SPARSE)])
def test_a_stated_format_of_the_same_family_is_accepted(fmt: str, stated: DiskFormat, images: dict[str, Path]) -> None:
    assert hash_disk(images[fmt], source_format=stated).content_hash == hash_disk(images[fmt]).content_hash


def test_valid_images_still_read_as_qemu_reads_them(images: dict[str, Path], tmp_path: Path) -> None:
    for fmt, qemu_fmt in (("vhd", "vpc"), ("vmdk-flat", "vmdk"), ("vhd-dynamic", "vpc")):
        out = tmp_path / f"{fmt}.raw"
        convert(images[fmt], out, DiskFormat.RAW)
        assert qemu_compare(out, "raw", images[fmt], qemu_fmt).returncode == 0


SIGNATURES = {  # (offset, length) of the bytes detection relies on
    "vhd": [(-512, 8)],
    "vhd-dynamic": [(0, 8), (512, 8), (-512, 8)],
    "vhdx": [(0, 8)],
    "vmdk-sparse": [(0, 4)],
    "vmdk-stream": [(0, 4)],
    "vmdk-flat": [(0, 21)],
}


@pytest.mark.parametrize("fmt", sorted(SIGNATURES))
def test_fuzz_damaged_signatures_are_never_read_as_raw(
    fmt: str, images: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Bit flips and byte substitutions in the magic numbers: refused, or (when the damage left
    the format recognisable) read as that format -- never as a raw disk of the file's bytes."""
    template = images[fmt].read_bytes()
    folder = tmp_path_factory.mktemp(f"sig-{fmt}")
    if fmt == "vmdk-flat":
        shutil.copy(images[fmt].parent / "disk-flat.vmdk", folder)
    work = folder / "disk.vmdk"
    areas = SIGNATURES[fmt]
    family = fmt.split("-")[0]

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(
        st.lists(
            st.tuples(st.integers(0, len(areas) - 1), st.integers(0, 20), st.integers(0, 255)), min_size=1, max_size=3
        )
    )
    def run(mutations: list[tuple[int, int, int]]) -> None:
        data = bytearray(template)
        for area, pos, value in mutations:
            start, length = areas[area]
            data[(start if start >= 0 else len(data) + start) + pos % length] = value
        work.write_bytes(data)
        try:
            with open_disk(work) as reader:
                assert reader.format.value.split("-")[0] == family, reader.format
        except FormatError:
            pass

    run()


# --- fuzzing: random byte damage in the structures of each format --------------------------

STRUCTURES = {
    "vhd-dynamic": [(0, 2048), (-512, 512)],
    "vhdx": [
        (0, 512),
        (64 * 1024, 4096),
        (128 * 1024, 4096),
        (192 * 1024, 128),
        (2 * MiB, 256),
        (2 * MiB + 64 * 1024, 64),
        (3 * MiB, 64),
    ],
    "vmdk-sparse": [(0, 512), (512, 1024), (21 * 512, 4096)],
    "vmdk-stream": [(0, 512), (512, 512), (65536, 1024), (-1536, 1536)],
}


@pytest.mark.parametrize("fmt", sorted(STRUCTURES))
def test_fuzz_parsers_raise_only_format_errors(
    fmt: str, images: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    template = images[fmt].read_bytes()
    work = tmp_path_factory.mktemp(f"fuzz-{fmt}") / "f.img"
    areas = STRUCTURES[fmt]

    @settings(
        max_examples=120, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(
        st.lists(
            st.tuples(st.integers(0, len(areas) - 1), st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=6
        )
    )
    def run(mutations: list[tuple[int, int, int]]) -> None:
        data = bytearray(template)
        for area, pos, value in mutations:
            start, length = areas[area]
            base = start if start >= 0 else len(data) + start
            data[base + pos % length] = value
        work.write_bytes(data)
        try:
            with open_disk(work, DiskFormat(fmt)) as reader:
                # Bounded work whatever the damage: at most 64 extents, 1 MiB each.
                for n, ext in enumerate(reader.extents()):
                    if n >= 64:
                        break
                    reader.read(ext.offset, min(ext.length, MiB))
        except (FormatError, InputError):
            pass

    run()
