"""``imageport disk ...``: inspect, convert, hash and check image files."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from cli.output import console, emit_json, emit_mapping, parse_size, progress_reporter, reports_errors
from imageport import names
from imageport.adapters.registry import adapter_for_scheme
from imageport.disks.base import LOCAL, FileSystem
from imageport.disks.convert import ConvertResult, convert, hash_disk
from imageport.disks.detect import open_disk
from imageport.models import DiskFormat, VerifyMode

app = typer.Typer(help="Disk images: info, convert, hash, check (raw, VHD, VHDX, VMDK).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
WaitLockFlag = Annotated[
    bool,
    typer.Option(
        "--wait-lock", help="If another run is writing the same output, wait for it instead of failing at once"
    ),
]
FromFormat = Annotated[
    DiskFormat | None,
    typer.Option(
        "--from",
        help="The format the input must be (refused when its content says otherwise); "
        "raw also reads a file whose damaged signatures would otherwise be refused",
        case_sensitive=False,
    ),
]
VerifyFlag = Annotated[
    VerifyMode,
    typer.Option(
        "--verify",
        help="full: re-read the whole target after writing (one read of its data) and compare content hashes",
        case_sensitive=False,
    ),
]
Image = Annotated[
    str,
    typer.Argument(
        help="Image: a local path, smb://CONNECTOR/path, local://CONNECTOR/path, azure-disk://CONNECTOR/RG/DISK, "
        "azure-snapshot://CONNECTOR/RG/NAME, datastore://CONNECTOR/DATASTORE/path or sas+https://BLOB-SAS-URL "
        "(format detected from content; what a run's result prints is accepted as it is)"
    ),
]


def parse_location(text: str, field: str = "location") -> Any:
    """A location typed on the command line, as a disk reference; a plain local path stays a string.

    The scheme picks the kind's adapter (``imageport.adapters.registry``), which parses exactly what
    it formats (what results and artifacts print); paths inside a connector follow
    ``imageport.names.store_path`` (no ``..``, nothing absolute, no NUL...). A refusal names ``field``
    (the argument) and the expected shape, as an ``InputError``.
    """
    adapter = adapter_for_scheme(text)
    if adapter is None:
        return names.check(field, text, names.no_nul)
    return adapter.parse(text, field)


@contextlib.contextmanager
def located(text: str) -> Iterator[tuple[FileSystem, str]]:
    """Where an image is: a local path, a page blob by SAS, or any disk location its kind's adapter reads
    (``smb://``, ``local://``, ``datastore://``; ``azure-disk://`` and ``azure-snapshot://`` through a read
    grant for the command, then revoked)."""
    if text.startswith(("sas+https://", "sas+http://")):  # a page blob by SAS, e.g. a disk's read grant
        from imageport.storage.page_blob import PageBlobFileSystem

        yield PageBlobFileSystem(text.removeprefix("sas+")), "blob"
        return
    ref = parse_location(text)
    if isinstance(ref, str):
        yield LOCAL, ref  # no connector: Prefect is not even imported
        return
    from blocks.resolve import located as located_ref

    with located_ref(ref) as found:
        yield found


def connector_for(text: str, name: str, kind: str) -> Any:
    from blocks.resolve import connector_adapter  # Prefect only when a connector is named

    return connector_adapter(name, kind, text)


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
