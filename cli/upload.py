"""``imageport upload SRC TARGET``: an image into an Azure managed disk or an existing page blob."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.locations import connector_for, located, managed_disk_target
from cli.options import FromFormat, Image, JsonFlag, VerifyFlag
from cli.output import progress_reporter, reports_errors
from cli.results import show_stage
from imageport.disks.detect import open_disk
from imageport.errors import InputError
from imageport.models import AzureSku, HyperVGeneration, OsType, VerifyMode
from imageport.platforms.azure.disks import upload_to_managed_disk
from imageport.results import from_managed_disk_upload, from_page_upload
from imageport.storage.page_blob import PageBlob
from imageport.transfer.pages import DEFAULT_CHECKPOINTS, upload_to_page_blob

TARGETS = (
    "azure-disk://CONNECTOR/RESOURCE_GROUP/DISK, sas+https://ACCOUNT/CONTAINER/BLOB?SAS "
    "(sas+http:// for an emulator), or - to read a SAS URL from standard input"
)


def _sas_url(target: str) -> str | None:
    if target == "-":  # keeps the SAS out of shell history and the process list
        target = sys.stdin.readline().strip()
    for scheme in ("sas+https://", "sas+http://"):
        if target.startswith(scheme):
            return target.removeprefix("sas+")
    return None


def parse_tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--tags {pair!r}: use key=value")
        tags[key] = value
    return tags


@reports_errors
def upload(
    source: Image,
    target: Annotated[str, typer.Argument(help=TARGETS)],
    source_format: FromFormat = None,
    threads: Annotated[int, typer.Option(min=1, max=64, help="Writes in flight (Citrix default 5)")] = 5,
    force: Annotated[bool, typer.Option(help="Replace an existing disk, or data already in the blob")] = False,
    sku: Annotated[AzureSku, typer.Option(help="Managed-disk SKU")] = AzureSku.PREMIUM_LRS,
    tags: Annotated[list[str] | None, typer.Option("--tags", help="k=v tag on the disk (repeatable)")] = None,
    hyper_v_generation: Annotated[HyperVGeneration, typer.Option(help="Fixed at creation")] = HyperVGeneration.V2,
    os_type: Annotated[OsType, typer.Option(help="OS type recorded on the disk")] = OsType.WINDOWS,
    checkpoint_dir: Annotated[Path, typer.Option(help="Where resume checkpoints live")] = DEFAULT_CHECKPOINTS,
    verify: VerifyFlag = VerifyMode.AUTO,
    as_json: JsonFlag = False,
) -> None:
    """Upload SOURCE as a fixed VHD, converted on the fly: sparse, parallel, resumable, verified."""
    disk = managed_disk_target(target) if target.startswith("azure-disk://") else None
    sas = None if disk else _sas_url(target)
    if disk is None and sas is None:
        raise InputError(f"the target must be {TARGETS}")
    with (
        located(source) as (fs, path),
        open_disk(path, source_format, fs=fs) as reader,
        progress_reporter(f"upload {source}") as progress,
    ):
        if disk is not None:
            connector, resource_group, name = disk
            outcome = upload_to_managed_disk(
                connector_for(target, connector, "azure"),
                reader,
                resource_group,
                name,
                sku=sku,
                tags=parse_tags(tags or []),
                hyper_v_generation=hyper_v_generation,
                os_type=os_type,
                overwrite=force,
                threads=threads,
                checkpoint_dir=checkpoint_dir,
                progress=progress,
                verify=verify.value,
            )
            result = from_managed_disk_upload(outcome)
        else:
            assert sas is not None
            result = from_page_upload(upload_to_page_blob(
                reader,
                PageBlob(sas),
                threads=threads,
                checkpoint_dir=checkpoint_dir,
                overwrite=force,
                progress=progress,
                verify=verify.value,
            ))  # fmt: skip
    show_stage(result.model_copy(update={"source": source}), as_json)
