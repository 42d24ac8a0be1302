"""``imageport publish IMAGE STORE --name NAME``: a ready-to-register vDisk in a PVS store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from cli.disk import FromFormat, Image, JsonFlag, VerifyFlag, WaitLockFlag, located, parse_location
from cli.output import console, emit_json, progress_reporter, reports_errors
from imageport.models import PublishOptions, ShareDiskFormat, VerifyMode, parse_model
from imageport.names import check, free_text, vdisk_name
from imageport.platforms.pvs.publish import publish as publish_vdisk
from imageport.platforms.pvs.store import LocalStoreFolder, StoreFolder


@contextlib.contextmanager
def store_at(text: str) -> Iterator[StoreFolder]:
    ref = parse_location(text, "STORE")
    if isinstance(ref, str):
        yield LocalStoreFolder(Path(ref))
        return
    from blocks.resolve import store_folder  # the kind's adapter refuses one that cannot be a store

    with store_folder(ref) as folder:
        yield folder


@reports_errors
def publish(
    image: Image,
    store: Annotated[str, typer.Argument(help="The PVS store folder: smb://CONNECTOR/folder or a local directory")],
    name: Annotated[str, typer.Option("--name", help="vDisk name: 1-52 letters, digits, space, - _ . (no extension)")],
    source_format: FromFormat = None,
    disk_format: Annotated[
        ShareDiskFormat, typer.Option("--format", help="vDisk container", case_sensitive=False)
    ] = ShareDiskFormat.VHDX,
    force: Annotated[bool, typer.Option(help="Replace an existing vDisk of that name (never one in use)")] = False,
    new_version: Annotated[
        bool, typer.Option(help="Add the image as the next version (NAME.N.vhdx) of an existing vDisk")
    ] = False,
    pvs_site: Annotated[str | None, typer.Option(help="PVS site, for the registration commands")] = None,
    pvs_store: Annotated[str | None, typer.Option(help="PVS store name, for the registration commands")] = None,
    wait_lock: WaitLockFlag = False,
    verify: VerifyFlag = VerifyMode.AUTO,
    as_json: JsonFlag = False,
) -> None:
    """Write IMAGE into the store as vDisk NAME: sparse, resumable, verified; prints how to register it."""
    check("--name", name, vdisk_name)  # the same rules as specs, before anything is opened
    for flag, text in (("--pvs-site", pvs_site), ("--pvs-store", pvs_store)):
        if text is not None:
            check(flag, text, free_text)
    options = parse_model(
        PublishOptions,
        {
            "disk_format": disk_format,
            "overwrite": force,
            "new_version": new_version,
            "pvs_site": pvs_site,
            "pvs_store": pvs_store,
            "wait_lock": wait_lock,
            "verify": verify,
        },
    )
    with (
        located(image) as (source_fs, source_path),
        store_at(store) as folder,
        progress_reporter(f"publish {name}") as progress,
    ):
        result = publish_vdisk(
            source_path, source_fs, folder, name, options, progress=progress, source_format=source_format
        )
    if as_json:
        emit_json(result.as_dict())
        return
    console.print(
        f"published {result.file} ({result.format}, version {result.version}) to {result.store}: "
        f"{result.data_written:,} data bytes in {result.seconds:.1f} s"
        + (" (resumed, re-verified)" if result.resumed else ""),
        highlight=False,
    )
    console.print(f"content {result.content_hash}", highlight=False)
    console.print(f"registration steps saved as {result.registration_file}:\n", highlight=False)
    console.print(result.registration, highlight=False, markup=False)
