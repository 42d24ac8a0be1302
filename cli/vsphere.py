"""``imageport vsphere ...``: list VMs and disks, export a VM's disk, import an image to a datastore."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.locations import connector_for, export_container, located
from cli.options import ExportFormat, ExportOutput, Image, JsonFlag, ReplaceOutput, VerifyFlag, WaitLockFlag
from cli.output import emit_json, emit_table, progress_reporter, reports_errors
from cli.results import show_stage
from imageport.models import VerifyMode
from imageport.results import from_vsphere_export, from_vsphere_import

app = typer.Typer(help="vSphere: VMs, disks, export and import.", no_args_is_help=True)
Connector = Annotated[str, typer.Option("--connector", "-c", help="Name of a saved vSphere connector")]


def _session(connector: str):  # type: ignore[no-untyped-def]
    return connector_for(f"vsphere connector {connector}", connector, "vsphere")


@app.command("vms")
@reports_errors
def vms(connector: Connector, as_json: JsonFlag = False) -> None:
    """Every VM: power state, firmware, guest OS, disks, snapshots."""
    from imageport.platforms.vsphere.inventory import list_vms

    with _session(connector) as session:
        found = list_vms(session.si)
    if as_json:
        emit_json([v.as_dict() for v in found])
        return
    rows = [
        [v.name, v.moref, v.power_state, v.firmware or "", v.guest_id or "", len(v.disks), ", ".join(v.snapshots)]
        for v in found
    ]
    emit_table("VMs", ["name", "moref", "power", "firmware", "guest", "disks", "snapshots"], rows)


@app.command("disks")
@reports_errors
def disks(
    vm: Annotated[str, typer.Argument(help="VM name, inventory path (DC/vm/folder/name) or MoRef (vm-123)")],
    connector: Connector,
    as_json: JsonFlag = False,
) -> None:
    """A VM's disks: controller, unit, size, backing file chain, thin, mode."""
    from imageport.platforms.vsphere.inventory import describe_vm, find_vm

    with _session(connector) as session:
        info = describe_vm(session.si, find_vm(session.si, vm))
    if as_json:
        emit_json([d.__dict__ for d in info.disks])
        return
    rows = [
        [d.label, f"{d.controller} {d.bus}:{d.unit}", f"{d.capacity_bytes / 2**30:.1f} GiB", d.file,
         len(d.chain), "thin" if d.thin else "thick", d.mode]
        for d in info.disks
    ]  # fmt: skip
    emit_table(f"disks of {info.name}", ["disk", "controller", "size", "file", "chain", "type", "mode"], rows)


@app.command("export")
@reports_errors
def export(
    vm: Annotated[str, typer.Argument(help="VM name, inventory path or MoRef")],
    output: ExportOutput,
    connector: Connector,
    disk: Annotated[str | None, typer.Option(help="Disk label ('Hard disk 1') or datastore path")] = None,
    snapshot: Annotated[str | None, typer.Option(help="Read this existing snapshot (kept)")] = None,
    read_path: Annotated[str, typer.Option(help="auto, datastore (ranged HTTPS) or nfc (export lease)")] = "auto",
    to: ExportFormat = None,
    force: ReplaceOutput = False,
    wait_lock: WaitLockFlag = False,
    verify: VerifyFlag = VerifyMode.AUTO,
    as_json: JsonFlag = False,
) -> None:
    """Export a VM's disk without touching it: snapshot, read the disk as of the snapshot, remove the snapshot."""
    from imageport.platforms.vsphere.export import export_vm_disk

    container = export_container(output, to)  # --to, else the share connector's disk_format
    with (
        _session(connector) as session,
        located(output) as (output_fs, output_path),
        progress_reporter(f"export {vm}") as progress,
    ):
        result = export_vm_disk(
            session, vm, output_path, output_fs, container, disk=disk, snapshot=snapshot, read_path=read_path,
            overwrite=force, progress=progress, wait_lock=wait_lock, verify=verify.value,
        )  # fmt: skip
    show_stage(from_vsphere_export(result).model_copy(update={"target": output}), as_json)


@app.command("import")
@reports_errors
def import_(
    image: Image,
    connector: Connector,
    datastore: Annotated[str, typer.Option(help="Datastore to write to")],
    folder: Annotated[str, typer.Option(help="Folder on the datastore")],
    name: Annotated[str, typer.Option(help="Disk name (NAME.vmdk)")],
    layout: Annotated[str, typer.Option(help="flat (runnable on ESXi) or stream (compact)")] = "flat",
    create_vm: Annotated[str | None, typer.Option(help="Also create a powered-off VM of this name")] = None,
    firmware: Annotated[str, typer.Option(help="VM firmware: efi or bios")] = "efi",
    guest_id: Annotated[str, typer.Option(help="VM guest OS id")] = "windows9Server64Guest",
    force: Annotated[bool, typer.Option(help="Replace an existing disk of that name")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Upload IMAGE to a datastore as a VMDK vSphere accepts (verified before it takes its name)."""
    from imageport.platforms.vsphere.imports import create_vm_for_disk, import_to_datastore

    with (
        _session(connector) as session,
        located(image) as (source_fs, source),
        progress_reporter(f"import {name}") as progress,
    ):
        result = import_to_datastore(
            session, source, source_fs, datastore, folder, name, kind=layout, overwrite=force, progress=progress
        )
        if create_vm:
            result.vm = create_vm_for_disk(
                session, create_vm, result.disk, capacity_bytes=result.virtual_size, firmware=firmware,
                guest_id=guest_id,
            )  # fmt: skip
    show_stage(from_vsphere_import(result, source=image), as_json)
