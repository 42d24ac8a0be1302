"""``imageport upload SRC sas+https://...``: an image into a page blob (an existing upload SAS)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.disk import Image, JsonFlag, open_location
from cli.output import console, emit_json, progress_reporter, reports_errors
from imageport.disks.detect import open_disk
from imageport.errors import InputError
from imageport.storage.page_blob import PageBlob
from imageport.transfer.pages import upload_to_page_blob

DEFAULT_CHECKPOINTS = Path(os.environ.get("IMAGEPORT_CHECKPOINTS", "~/.cache/imageport/checkpoints")).expanduser()


def _sas_url(target: str) -> str:
    if target == "-":  # keeps the SAS out of shell history and the process list
        target = sys.stdin.readline().strip()
    for scheme in ("sas+https://", "sas+http://"):
        if target.startswith(scheme):
            return target.removeprefix("sas+")
    raise InputError(
        "the target must be sas+https://ACCOUNT/CONTAINER/BLOB?SAS (sas+http:// for an emulator), "
        "or - to read it from standard input"
    )


@reports_errors
def upload(
    source: Image,
    target: Annotated[
        str,
        typer.Argument(
            help="sas+https://...?SAS of an existing page blob (N MiB + 512 bytes), or - to read it from standard input"
        ),
    ],
    threads: Annotated[int, typer.Option(min=1, max=64, help="Writes in flight (Citrix default 5)")] = 5,
    force: Annotated[bool, typer.Option(help="Replace data already in the blob from another upload")] = False,
    checkpoint_dir: Annotated[Path, typer.Option(help="Where resume checkpoints live")] = DEFAULT_CHECKPOINTS,
    as_json: JsonFlag = False,
) -> None:
    """Upload SOURCE as a fixed VHD, converted on the fly: sparse, parallel, resumable, verified."""
    fs, path = open_location(source)
    blob = PageBlob(_sas_url(target))
    with open_disk(path, fs=fs) as reader, progress_reporter(f"upload {source}") as progress:
        result = upload_to_page_blob(
            reader, blob, threads=threads, checkpoint_dir=checkpoint_dir, overwrite=force, progress=progress
        )
    if as_json:
        emit_json(result.__dict__)
    else:
        console.print(
            f"uploaded {source} to {result.target}: {result.chunks_sent} chunks sent "
            f"({result.bytes_sent:,} bytes), {result.chunks_resumed} resumed, {result.zero_chunks} zero, "
            f"in {result.seconds:.1f} s",
            highlight=False,
        )
        console.print(f"content {result.content_hash}", highlight=False)
