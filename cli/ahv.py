"""``imageport ahv ...``: a Prism Central's VMs (power, firmware, disks, recovery points), a VM's disks, export."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.locations import connector_for, export_container, located
from cli.options import ExportFormat, ExportOutput, JsonFlag, ReplaceOutput, VerifyFlag, WaitLockFlag
from cli.output import emit_json, emit_table, progress_reporter, reports_errors
from cli.results import show_stage
from imageport.models import VerifyMode
from imageport.results import from_ahv_export

app = typer.Typer(help="Nutanix AHV (Prism Central v4): VMs, disks, export.", no_args_is_help=True)
Connector = Annotated[str, typer.Option("--connector", "-c", help="Name of a saved ahv connector")]
Vm = Annotated[str, typer.Argument(help="VM name (unique in Prism Central) or extId")]


def _session(connector: str):  # type: ignore[no-untyped-def]
    return connector_for(f"ahv connector {connector}", connector, "ahv")


@app.command("vms")
@reports_errors
def vms(connector: Connector, as_json: JsonFlag = False) -> None:
    """Every VM: extId, power state, firmware (bootConfig), disks, recovery points."""
    from imageport.platforms.ahv.inventory import list_vms

    with _session(connector) as session:
        found = list_vms(session)
    if as_json:
        emit_json([v.as_dict() for v in found])
        return
    rows = [[v.name, v.ext_id, v.power_state, v.firmware, len(v.disks), ", ".join(v.recovery_points)] for v in found]
    emit_table("VMs", ["name", "extId", "power", "firmware", "disks", "recovery points"], rows)


@app.command("disks")
@reports_errors
def disks(vm: Vm, connector: Connector, as_json: JsonFlag = False) -> None:
    """A VM's disks by bus type and index: size and diskExtId."""
    from imageport.platforms.ahv.inventory import find_vm

    with _session(connector) as session:
        info = find_vm(session, vm)
    if as_json:
        emit_json([d.__dict__ for d in info.disks])
        return
    rows = [[d.label, f"{d.capacity_bytes / 2**30:.2f} GiB", d.disk_ext_id] for d in info.disks]
    emit_table(f"disks of {info.name}", ["disk", "size", "diskExtId"], rows)


@app.command("export")
@reports_errors
def export(
    vm: Vm,
    output: ExportOutput,
    connector: Connector,
    disk: Annotated[str | None, typer.Option(help="Disk by bus and index ('scsi.0') or diskExtId")] = None,
    to: ExportFormat = None,
    force: ReplaceOutput = False,
    wait_lock: WaitLockFlag = False,
    verify: VerifyFlag = VerifyMode.AUTO,
    as_json: JsonFlag = False,
) -> None:
    """Export a VM's disk without touching it: clone it into an image, download the image, delete the image."""
    from imageport.adapters.ahv import export_marks
    from imageport.platforms.ahv.export import export_vm_disk

    container = export_container(output, to)  # --to, else the share connector's disk_format
    with (
        _session(connector) as session,
        located(output) as (output_fs, output_path),
        progress_reporter(f"export {vm}") as progress,
    ):
        result = export_vm_disk(
            session, vm, output_path, output_fs, container, tags=export_marks(session), disk=disk, overwrite=force,
            progress=progress, wait_lock=wait_lock, verify=verify.value,
        )  # fmt: skip
    show_stage(from_ahv_export(result).model_copy(update={"target": output}), as_json)
