"""``imageport xenserver ...``: list VMs and disks of a XenServer pool, export a VM's disk."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.locations import connector_for, export_container, located
from cli.options import ExportFormat, ExportOutput, JsonFlag, ReplaceOutput, VerifyFlag, WaitLockFlag
from cli.output import emit_json, emit_table, progress_reporter, reports_errors
from cli.results import show_stage
from imageport.models import VerifyMode
from imageport.results import from_xenserver_export

app = typer.Typer(help="XenServer: VMs, disks, export.", no_args_is_help=True)
Connector = Annotated[str, typer.Option("--connector", "-c", help="Name of a saved XenServer connector")]
Vm = Annotated[str, typer.Argument(help="VM name label (unique in the pool) or uuid")]


def _session(connector: str):  # type: ignore[no-untyped-def]
    return connector_for(f"xenserver connector {connector}", connector, "xenserver")


@app.command("vms")
@reports_errors
def vms(connector: Connector, as_json: JsonFlag = False) -> None:
    """Every guest VM: uuid, power state, firmware, disks, snapshots."""
    from imageport.platforms.xenserver.inventory import list_vms

    with _session(connector) as session:
        found = list_vms(session.api)
    if as_json:
        emit_json([{**v.__dict__, "disks": [d.__dict__ for d in v.disks]} for v in found])
        return
    rows = [[v.name, v.uuid, v.power_state, v.firmware, len(v.disks), ", ".join(n for n, _ in v.snapshots)]
            for v in found]  # fmt: skip
    emit_table("VMs", ["name", "uuid", "power", "firmware", "disks", "snapshots"], rows)


@app.command("disks")
@reports_errors
def disks(vm: Vm, connector: Connector, as_json: JsonFlag = False) -> None:
    """A VM's disks: userdevice, device, VDI, size."""
    from imageport.platforms.xenserver.inventory import describe, find_vm

    with _session(connector) as session:
        info = describe(session.api, find_vm(session.api, vm))
    if as_json:
        emit_json([d.__dict__ for d in info.disks])
        return
    rows = [[d.userdevice, d.device, d.name, d.vdi_uuid, f"{d.virtual_size / 2**30:.2f} GiB"] for d in info.disks]
    emit_table(f"disks of {info.name}", ["userdevice", "device", "VDI", "VDI uuid", "size"], rows)


@app.command("export")
@reports_errors
def export(
    vm: Vm,
    output: ExportOutput,
    connector: Connector,
    disk: Annotated[str | None, typer.Option(help="The disk's userdevice ('0') or device ('xvda')")] = None,
    snapshot: Annotated[str | None, typer.Option(help="Read this existing snapshot (kept)")] = None,
    to: ExportFormat = None,
    force: ReplaceOutput = False,
    wait_lock: WaitLockFlag = False,
    verify: VerifyFlag = VerifyMode.AUTO,
    as_json: JsonFlag = False,
) -> None:
    """Export a VM's disk without touching it: snapshot, stream the snapshot's VDI, destroy the snapshot."""
    from imageport.adapters.xenserver import export_marks
    from imageport.platforms.xenserver.export import export_vm_disk

    container = export_container(output, to)  # --to, else the share connector's disk_format
    with (
        _session(connector) as session,
        located(output) as (output_fs, output_path),
        progress_reporter(f"export {vm}") as progress,
    ):
        result = export_vm_disk(
            session, vm, output_path, output_fs, container, marks=export_marks(), disk=disk, snapshot=snapshot,
            overwrite=force, progress=progress, wait_lock=wait_lock, verify=verify.value,
        )  # fmt: skip
    show_stage(from_xenserver_export(result).model_copy(update={"target": output}), as_json)
