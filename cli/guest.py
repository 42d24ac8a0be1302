"""``imageport prepare`` and ``imageport diagnostics``: offline changes inside a Windows image, and a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.locations import located, parse_location
from cli.options import FromFormat, Image, JsonFlag
from cli.output import console, emit_json, progress_reporter, reports_errors
from imageport.errors import InputError
from imageport.models import (
    DiskFormat,
    HyperVGeneration,
    InstallType,
    PrepareOptions,
    ProvisioningType,
    TargetPlatform,
    parse_model,
)


def _local_image(image: str, source_format: DiskFormat | None) -> str:
    """Prepare opens an image in place only as a local file (the appliance needs one), of the format stated."""
    if not isinstance(parse_location(image), str) or image.startswith("sas+"):
        raise InputError(f"{image}: prepare opens a local image file in place; use --output to copy it here first")
    from imageport.disks.detect import detect_format

    detect_format(image, expected=source_format)  # a damaged or unexpected container is refused before launch
    return image


def _options(**fields: Any) -> PrepareOptions:
    return parse_model(PrepareOptions, {k: v for k, v in fields.items() if v is not None})


@reports_errors
def prepare(
    image: Image,
    target: Annotated[TargetPlatform, typer.Option(help="Platform the image will run on")],
    output: Annotated[Path | None, typer.Option(help="Prepare a copy written here (source untouched)")] = None,
    source_format: FromFormat = None,
    in_place: Annotated[bool, typer.Option(help="Change IMAGE itself (it must be a local copy you can lose)")] = False,
    generation: Annotated[HyperVGeneration, typer.Option(help="Azure VM generation (V1 BIOS, V2 UEFI)")] = (
        HyperVGeneration.V2
    ),
    provisioning: Annotated[ProvisioningType, typer.Option(help="mcs or pvs")] = ProvisioningType.MCS,
    enable_rdp: Annotated[bool, typer.Option(help="Enable Remote Desktop")] = False,
    domain_unjoin: Annotated[bool, typer.Option(help="Leave the AD domain at first boot")] = False,
    chkdsk: Annotated[bool, typer.Option(help="chkdsk at first boot")] = False,
    defrag: Annotated[bool, typer.Option(help="defrag at first boot")] = False,
    controllers: Annotated[str | None, typer.Option(help='VDA /reconfigure /controllers "ddc1 ddc2"')] = None,
    port: Annotated[int | None, typer.Option(help="VDA /reconfigure /portnumber")] = None,
    enable_hdx_ports: Annotated[bool, typer.Option(help="VDA /reconfigure /enable_hdx_ports")] = False,
    pvs_version: Annotated[str | None, typer.Option(help="PVS target device version to install")] = None,
    mcsio: Annotated[InstallType, typer.Option(help="MCS I/O driver: install, force, skip")] = InstallType.SKIP,
    misa: Annotated[InstallType, typer.Option(help="MCS security agent: install, force, skip")] = InstallType.SKIP,
    installers: Annotated[Path | None, typer.Option(help="Local folder with the installers to stage")] = None,
    expected_md5: Annotated[
        str | None, typer.Option(help="Refuse the image unless the MD5 of its virtual content is this (-Md5Hash)")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="List every change (old -> new) and write nothing")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Make a Windows image boot and work on TARGET: plan, apply, re-read and verify (one appliance launch)."""
    from imageport.guest.firstboot import next_step
    from imageport.guest.installers import local_staging
    from imageport.guest.plan import PrepareTarget
    from imageport.guest.prepare import prepare_copy, prepare_image

    switches: list[dict[str, Any]] = []
    if controllers:
        switches.append({"name": "/controllers", "value": controllers})
    if port is not None:
        switches.append({"name": "/portnumber", "value": str(port)})
    if enable_hdx_ports:
        switches.append({"name": "/enable_hdx_ports"})
    options = _options(
        provisioning_type=provisioning, enable_rdp=enable_rdp, domain_unjoin=domain_unjoin, chkdsk=chkdsk,
        defrag=defrag, xd_reconfigure=switches, pvs_install_version=pvs_version, mcsio=mcsio, misa=misa,
        expected_md5=expected_md5,
        # the CLI stages from the local folder it is given; this ref only satisfies the model's check
        installers={"kind": "local", "path": "installers"} if installers else None,
    )  # fmt: skip
    request = PrepareTarget(target, generation, options)
    staging = local_staging(str(installers), options) if installers else None  # checked before anything changes
    if dry_run:
        if output or in_place:
            raise InputError("--dry-run writes nothing: leave out --output/--in-place")
        result = prepare_image(_local_image(image, source_format), request, dry_run=True, staging=staging)
    elif in_place == (output is not None):
        raise InputError("say where to write: --output COPY (recommended) or --in-place")
    elif in_place:
        result = prepare_image(_local_image(image, source_format), request, staging=staging)
    else:
        assert output is not None
        with located(image) as (fs, path), progress_reporter(f"copy {image}") as progress:
            result = prepare_copy(
                path, fs, str(output), request, staging=staging, progress=progress,
                source_format=source_format,
            )  # fmt: skip
    if as_json:
        emit_json(result.as_dict())
        return
    verb = "would change" if result.dry_run else "changed"
    console.print(f"{result.image}: {verb} {len(result.changes)} item(s)", highlight=False)
    for line in result.changes:
        console.print(f"  {line}", highlight=False, markup=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    console.print(
        f"appliance launch {result.launch_s:.1f} s, work {result.work_s:.1f} s"
        + (", verified" if result.verified else ""),
        highlight=False,
    )
    if not result.dry_run and result.firstboot_actions:
        console.print(f"next: {next_step(result.firstboot_actions)}", highlight=False, markup=False)


DISK_HELP = "A local image file, or a disk: azure-disk://, azure-snapshot://, datastore://, local://"
REPORT_HELP = "Also write REPORT.json and REPORT.md (a local path, smb://SHARE/path or local://CONN/path)"


@reports_errors
def diagnostics(
    image: Annotated[str, typer.Argument(help=DISK_HELP)],
    report: Annotated[str | None, typer.Option(help=REPORT_HELP)] = None,
    source_format: FromFormat = None,
    ce_logs: Annotated[bool, typer.Option(help="Put the compositing engine's own log in the report")] = False,
    boot_diagnostics: Annotated[bool, typer.Option(help="Capture the compositing engine's console too")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Read-only report: OS, Citrix and hypervisor components, driver start types, first-boot actions and logs.

    A local file is read in place; a disk on Azure or vSphere is read by a compositing engine there."""
    disk, output = parse_location(image, "IMAGE"), parse_location(report, "--report") if report else None
    if isinstance(disk, str) and (output is None or isinstance(output, str)) and not (ce_logs or boot_diagnostics):
        from imageport.guest.diagnostics import diagnose

        result = diagnose(_local_image(image, source_format))
        if report is not None:
            result.save(Path(report))
        if as_json:
            emit_json(result.as_dict())
        else:
            console.print(result.markdown(), highlight=False, markup=False)
        return
    _diagnose_with_flow(disk, output, ce_logs, boot_diagnostics, as_json)


def _diagnose_with_flow(disk: Any, output: Any, ce_logs: bool, boot_diagnostics: bool, as_json: bool) -> None:
    """A disk where it lives: the diagnostics flow, run here, after its checks (refused: exit 2)."""
    from flows.diagnostics import diagnostics_flow
    from imageport.models import DiagnosticsSpec

    if isinstance(disk, str) or isinstance(output, str):
        raise InputError("name the disk and the report both as locations (local://CONN/path, smb://...) when a "
                         "compositing engine reads the disk")  # fmt: skip
    spec = parse_model(DiagnosticsSpec, {"disk": disk, "output": output, "ce_logs": ce_logs,
                                         "boot_diagnostics": boot_diagnostics})  # fmt: skip
    _run_here(diagnostics_flow, spec, "diagnostics", as_json)


def _run_here(flow: Any, spec: Any, what: str, as_json: bool) -> None:
    """A stage's flow run in this process after its checks (a problem is bad input: exit 2); its result shown,
    or its end state (exit 1 failed, 3 cancelled)."""
    from cli.jobs import FINAL
    from cli.output import EXIT_FAILED, err_console
    from cli.results import show_result
    from tasks.checks import require_clean

    require_clean(spec)  # every check before anything is created
    state = flow(spec, return_state=True)
    if not state.is_completed():
        err_console.print(f"{what}: {state.type.value} {state.message or ''}", highlight=False, markup=False)
        raise typer.Exit(FINAL.get(state.type.value, EXIT_FAILED))
    show_result(state.result(), as_json)


@reports_errors
def finalize(
    location: Annotated[str, typer.Argument(help="The prepared disk: azure-disk://CONN/RG/NAME")],
    timeout: Annotated[int, typer.Option(help="Give up waiting for 'all actions done' after this (s)")] = 3600,
    vm_size: Annotated[str | None, typer.Option(help="Azure: the helper VM's size (default: ce_vm_size)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Boot a prepared image once in a helper VM on its platform until its startup actions report done; the VM
    is deleted, the disk kept (stopped, ready for a catalog). The result lists each action and the log's end."""
    from flows.finalize_image import finalize_image_flow
    from imageport.adapters.registry import adapter_for
    from imageport.models import FinalizeSpec

    disk = parse_location(location, "LOCATION")
    if isinstance(disk, str):  # a plain path: a local image
        raise InputError(f"LOCATION {location}: {adapter_for('local').finalize_refusal}")
    spec = parse_model(FinalizeSpec, {"disk": disk, "enabled": "on", "timeout_s": timeout, "vm_size": vm_size})
    _run_here(finalize_image_flow, spec, "finalize", as_json)
