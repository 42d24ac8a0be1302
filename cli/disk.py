"""``imageport disk ...``: inspect, convert, hash and check image files."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.locations import located
from cli.options import FromFormat, Image, JsonFlag, WaitLockFlag
from cli.output import console, emit_json, emit_mapping, parse_size, progress_reporter, reports_errors
from imageport.disks.convert import ConvertResult, convert, hash_disk
from imageport.disks.detect import open_disk
from imageport.models import DiskFormat

app = typer.Typer(help="Disk images: info, convert, hash, check (raw, VHD, VHDX, VMDK).", no_args_is_help=True)


def _gib(n: int) -> str:
    return f"{n:,} bytes ({n / 2**30:.2f} GiB)"


@app.command("info")
@reports_errors
def info(image: Image, source_format: FromFormat = None, as_json: JsonFlag = False) -> None:
    """Format, virtual size, allocated bytes, extents, parent chain."""
    with located(image) as (fs, path), open_disk(path, source_format, fs=fs) as reader:
        extents = list(reader.extents())
        data = {
            "path": str(image),
            "format": reader.format.value,
            "subformat": reader.subformat,
            "virtual_size": reader.virtual_size,
            "allocated_bytes": sum(e.length for e in extents),
            "extents": len(extents),
            "chain": [r.path for r in reader.chain()],
            **reader.details(),
        }
    if as_json:
        emit_json(data)
        return
    shown = dict(data)
    shown["virtual_size"] = _gib(data["virtual_size"])
    shown["allocated_bytes"] = _gib(data["allocated_bytes"])
    shown["chain"] = " <- ".join(data["chain"])
    emit_mapping(image, shown)


def show_convert_result(result: ConvertResult, as_json: bool) -> None:
    if as_json:
        emit_json(result.as_dict())
        return
    if result.output:
        console.print(
            f"wrote {result.output} ({result.format.value if result.format else '?'}, "
            f"{_gib(result.virtual_size)}), {result.data_written:,} data bytes in {result.seconds:.1f} s"
        )
    if result.restarted:
        console.print(f"started afresh: {result.restarted}", highlight=False)
    if result.resumed:
        console.print("resumed an interrupted run; the result was re-read and verified", highlight=False)
    elif result.verified == "full":
        console.print("the result was re-read and verified", highlight=False)
    if result.content_hash:
        console.print(f"content {result.content_hash}", highlight=False)
    if result.sha256:
        console.print(f"sha256 {result.sha256}", highlight=False)
    if result.md5:
        console.print(f"md5    {result.md5}", highlight=False)


@app.command("convert")
@reports_errors
def convert_cmd(
    source: Image,
    output: Annotated[
        str, typer.Argument(help="Output file or smb://CONNECTOR/path; written under a temporary name, then renamed")
    ],
    to: Annotated[DiskFormat, typer.Option("--to", help="Output format", case_sensitive=False)],
    source_format: FromFormat = None,
    size: Annotated[str | None, typer.Option(help="Grow the virtual disk to this size (e.g. 128G)")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing output file")] = False,
    sha256: Annotated[bool, typer.Option(help="Also compute the plain SHA-256 of the virtual disk")] = False,
    md5: Annotated[bool, typer.Option(help="Also compute the MD5 (Citrix -Md5Hash)")] = False,
    hashing: Annotated[bool, typer.Option("--hash/--no-hash", help="Compute the content hash (default on)")] = True,
    wait_lock: WaitLockFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Convert SOURCE to OUTPUT, streaming, copying allocated data only."""
    with (
        located(source) as (source_fs, source_path),
        located(output) as (output_fs, output_path),
        progress_reporter(f"convert {source}") as progress,
    ):
        result = convert(
            source_path,
            output_path,
            to,
            size=parse_size(size) if size else None,
            overwrite=force,
            hashing=hashing,
            sha256=sha256,
            md5=md5,
            progress=progress,
            source_fs=source_fs,
            output_fs=output_fs,
            wait_lock=wait_lock,
            source_format=source_format,
        )
    show_convert_result(result, as_json)


@app.command("hash")
@reports_errors
def hash_cmd(
    image: Image,
    sha256: Annotated[
        bool, typer.Option(help="Also the plain SHA-256 (comparable with sha256sum of a raw dump)")
    ] = False,
    md5: Annotated[bool, typer.Option(help="Also the MD5 (Citrix -Md5Hash)")] = False,
    source_format: FromFormat = None,
    as_json: JsonFlag = False,
) -> None:
    """The disk's content hash (SHA-256 tree over 4 MiB windows): the same for every container of one disk."""
    with located(image) as (fs, path), progress_reporter(f"hash {image}") as progress:
        result = hash_disk(path, sha256=sha256, md5=md5, progress=progress, source_format=source_format, fs=fs)
    show_convert_result(result, as_json)


@app.command("check")
@reports_errors
def check(image: Image, source_format: FromFormat = None, as_json: JsonFlag = False) -> None:
    """Validate the structure and read every allocated byte (catches corrupt grains and blocks)."""
    with located(image) as (fs, path), progress_reporter(f"check {image}") as progress:
        result = hash_disk(path, progress=progress, source_format=source_format, fs=fs)
    if as_json:
        emit_json(
            {
                "path": str(image),
                "ok": True,
                "format": result.source_format.value,
                "allocated_bytes": result.source_allocated,
            }
        )
    else:
        console.print(
            f"[green]ok[/green] {image}: {result.source_format.value}, structure valid, "
            f"{result.source_allocated:,} allocated bytes readable",
            highlight=False,
        )
