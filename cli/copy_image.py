"""``imageport copy SRC DST``: an image between any two stores, converting with ``--to``."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.disk import show_convert_result
from cli.locations import located
from cli.options import FromFormat, Image, JsonFlag, VerifyFlag, WaitLockFlag
from cli.output import progress_reporter, reports_errors
from imageport.disks.convert import convert
from imageport.disks.detect import open_disk
from imageport.errors import InputError
from imageport.models import DiskFormat, VerifyMode
from imageport.transfer.copy import copy_image

PLATFORM_TARGETS = ("azure-disk://", "sas+https://", "sas+http://", "-")


@reports_errors
def copy(
    source: Image,
    destination: Annotated[
        str,
        typer.Argument(help="A local path or smb://CONNECTOR/path (for Azure targets use 'imageport upload')"),
    ],
    to: Annotated[
        DiskFormat | None,
        typer.Option("--to", help="Output format (default: the source's own)", case_sensitive=False),
    ] = None,
    source_format: FromFormat = None,
    force: Annotated[bool, typer.Option(help="Replace an existing destination file")] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help="VHDX, VHD, raw: checkpoint, reconnect after a dropped connection, continue on a re-run",
        ),
    ] = True,
    wait_lock: WaitLockFlag = False,
    verify: VerifyFlag = VerifyMode.AUTO,
    as_json: JsonFlag = False,
) -> None:
    """Copy SOURCE to DESTINATION: allocated data only, hashed, under a temporary name until complete."""
    if destination.startswith(PLATFORM_TARGETS):
        raise InputError(f"{destination}: a platform disk is written with 'imageport upload SOURCE {destination}'")
    with located(source) as (source_fs, source_path), located(destination) as (output_fs, output_path):
        with open_disk(source_path, source_format, fs=source_fs) as reader:  # refused here if damaged
            fmt = to or reader.format
        with progress_reporter(f"copy {source}") as progress:
            if resume:
                result = copy_image(
                    source_path, source_fs, output_path, output_fs, fmt, overwrite=force, progress=progress,
                    wait_lock=wait_lock,
                    source_format=source_format,
                    verify=verify.value,
                )  # fmt: skip
            else:
                result = convert(
                    source_path, output_path, fmt, overwrite=force, progress=progress,
                    source_fs=source_fs, output_fs=output_fs, wait_lock=wait_lock, source_format=source_format,
                    verify=verify.value,
                )  # fmt: skip
    show_convert_result(result, as_json)
