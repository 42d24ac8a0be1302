"""``imageport upload SRC TARGET``: an image into an Azure managed disk or an existing page blob."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.disk import FromFormat, Image, JsonFlag, VerifyFlag, connector_for, located
from cli.output import console, emit_json, progress_reporter, reports_errors
from imageport.adapters.registry import adapter_for
from imageport.disks.detect import open_disk
from imageport.errors import InputError
from imageport.models import AzureSku, HyperVGeneration, OsType, VerifyMode
from imageport.platforms.azure.disks import upload_to_managed_disk
from imageport.storage.page_blob import PageBlob
from imageport.transfer.pages import DEFAULT_CHECKPOINTS, UploadResult, upload_to_page_blob

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


def managed_disk_target(target: str, field: str = "TARGET") -> tuple[str, str, str]:
    """``azure-disk://`` or ``azure-snapshot://CONNECTOR/RESOURCE_GROUP/NAME`` as its three parts."""
    kind = "azure-snapshot" if target.startswith("azure-snapshot://") else "azure-disk"
    ref = adapter_for(kind).parse(target, field)
    return ref.connector, ref.resource_group, ref.name


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
    extra: dict[str, Any] = {}
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
            result: UploadResult = outcome.transfer
            extra = {"disk_id": outcome.disk_id, "resumed_disk": outcome.resumed_disk, "run_id": outcome.run_id,
                     "revoked_leftover": outcome.revoked_leftover}  # fmt: skip
        else:
            assert sas is not None
            result = upload_to_page_blob(
                reader,
                PageBlob(sas),
                threads=threads,
                checkpoint_dir=checkpoint_dir,
                overwrite=force,
                progress=progress,
                verify=verify.value,
            )
    if as_json:
        emit_json({**result.__dict__, **extra})
        return
    console.print(
        f"uploaded {source} to {extra.get('disk_id', result.target)}: {result.chunks_sent} chunks sent "
        f"({result.bytes_sent:,} bytes), {result.chunks_resumed} resumed, {result.zero_chunks} zero, "
        f"in {result.seconds:.1f} s",
        highlight=False,
    )
    if result.restarted:
        console.print(f"started afresh: {result.restarted}", highlight=False)
    if extra.get("revoked_leftover"):
        console.print(f"revoked the write grant left by run {extra['revoked_leftover']}", highlight=False)
    if result.chunks_read_back:
        console.print(
            f"read back {result.chunks_read_back} resumed chunks from the target"
            + (f", {result.chunks_repaired} differed and were sent again" if result.chunks_repaired else ""),
            highlight=False,
        )
    console.print(f"content {result.content_hash}" + (" (re-read in full)" if result.verified == "full" else ""),
                  highlight=False)  # fmt: skip
