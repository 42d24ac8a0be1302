"""``imageport publish IMAGE STORE --name NAME``: a ready-to-register vDisk in a PVS store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from cli.locations import located, parse_location
from cli.options import FromFormat, Image, JsonFlag, VerifyFlag, WaitLockFlag
from cli.output import progress_reporter, reports_errors
from cli.results import show_stage
from imageport.models import PublishOptions, ShareDiskFormat, VerifyMode, parse_model
from imageport.names import check, free_text, vdisk_name
from imageport.platforms.pvs.publish import publish as publish_vdisk
from imageport.platforms.pvs.store import LocalStoreFolder, StoreFolder
from imageport.results import from_publish


@contextlib.contextmanager
def store_at(text: str) -> Iterator[StoreFolder]:
    ref = parse_location(text, "STORE")
    if isinstance(ref, str):
        yield LocalStoreFolder(Path(ref))
        return
    from blocks.resolve import store_folder  # the kind's adapter refuses one that cannot be a store

    with store_folder(ref) as folder:
        yield folder


def _decided(options: PublishOptions, store: str) -> PublishOptions:
    """The options with the container decided where every stage decides it (``disk_format_for``)."""
    from imageport.adapters.registry import disk_format_for

    ref = parse_location(store, "STORE")
    if isinstance(ref, str):
        return disk_format_for(options, None, None)  # a plain local folder: no connector to ask
    from blocks.resolve import CONNECTORS  # Prefect only when a connector is named

    return disk_format_for(options, ref, CONNECTORS)


@reports_errors
def publish(
    image: Image,
    store: Annotated[str, typer.Argument(help="The PVS store folder: smb://CONNECTOR/folder or a local directory")],
    name: Annotated[str, typer.Option("--name", help="vDisk name: 1-52 letters, digits, space, - _ . (no extension)")],
    source_format: FromFormat = None,
    disk_format: Annotated[
        ShareDiskFormat | None,
        typer.Option("--format", help="vDisk container (default: the share connector's disk_format, else vhdx)",
                     case_sensitive=False),
    ] = None,
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
    options = _decided(options, store)
    with (
        located(image) as (source_fs, source_path),
        store_at(store) as folder,
        progress_reporter(f"publish {name}") as progress,
    ):
        result = publish_vdisk(
            source_path, source_fs, folder, name, options, progress=progress, source_format=source_format
        )
    show_stage(from_publish(result, source=image), as_json)
