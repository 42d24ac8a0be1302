"""``imageport snapshot azure-disk://CONNECTOR/RG/DISK NAME``: a point-in-time copy of a managed disk."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.disk import JsonFlag, connector_for
from cli.output import console, emit_json, reports_errors
from cli.upload import managed_disk_target, parse_tags
from imageport.adapters.registry import format_ref
from imageport.errors import InputError
from imageport.models import AzureSnapshotRef
from imageport.platforms.azure.disks import create_snapshot


@reports_errors
def snapshot(
    disk: Annotated[str, typer.Argument(help="azure-disk://CONNECTOR/RESOURCE_GROUP/DISK")],
    name: Annotated[str, typer.Argument(help="Snapshot name (same resource group)")],
    tags: Annotated[list[str] | None, typer.Option("--tags", help="k=v tag on the snapshot (repeatable)")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing snapshot of that name")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Snapshot a managed disk (full copy); read it later as azure-snapshot://CONNECTOR/RG/NAME."""
    if not disk.startswith("azure-disk://"):
        raise InputError(f"{disk}: use azure-disk://CONNECTOR/RESOURCE_GROUP/DISK")
    connector, resource_group, disk_name = managed_disk_target(disk)
    session = connector_for(disk, connector, "azure")
    made = create_snapshot(session, resource_group, disk_name, name, tags=parse_tags(tags or []), overwrite=force)
    if as_json:
        emit_json(made.__dict__)
        return
    console.print(f"snapshot {made.snapshot_id} of {made.source_disk_id} ({made.size_bytes:,} bytes)", highlight=False)
    later = format_ref(AzureSnapshotRef(connector=connector, resource_group=resource_group, name=name))
    console.print(f"read it as {later}", highlight=False)
