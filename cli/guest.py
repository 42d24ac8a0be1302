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
    if dry_run:
        if output or in_place:
            raise InputError("--dry-run writes nothing: leave out --output/--in-place")
        result = prepare_image(_local_image(image, source_format), request, dry_run=True, installers_dir=installers)
    elif in_place == (output is not None):
        raise InputError("say where to write: --output COPY (recommended) or --in-place")
    elif in_place:
        result = prepare_image(_local_image(image, source_format), request, installers_dir=installers)
    else:
        assert output is not None
        with located(image) as (fs, path), progress_reporter(f"copy {image}") as progress:
            result = prepare_copy(
                path, fs, str(output), request, installers_dir=installers, progress=progress,
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


@reports_errors
def diagnostics(
    image: Image,
    report: Annotated[Path | None, typer.Option(help="Also write REPORT.json and REPORT.md")] = None,
    source_format: FromFormat = None,
    as_json: JsonFlag = False,
) -> None:
    """Read-only report: OS, Citrix and hypervisor components, driver start types, first-boot actions and logs."""
    from imageport.guest.diagnostics import diagnose

    result = diagnose(_local_image(image, source_format))
    if report is not None:
        result.save(report)
    if as_json:
        emit_json(result.as_dict())
    else:
        console.print(result.markdown(), highlight=False, markup=False)
