"""Publish: write a prepared image into a PVS store as a ready-to-register vDisk.

- Written through the disk engine as VHDX (or dynamic VHD), sparse, under
  ``NAME.vhdx.imageport-partial`` with checkpoints, so a killed or dropped run
  resumes where it stopped; renamed into place only when complete (and, when
  resumed, re-read and verified by content hash first).
- Never replaces a vDisk unless asked, never one that is in use (lock files,
  handles open on another client), never the base of a version chain.
- A new version of an existing vDisk is a new merged base ``NAME.N.vhdx``
  with the next free N; existing files are never modified.
- Beside the image: ``<stem>.imageport.json`` (what was published, its content
  hash, the registration commands) and ``<stem>.register.txt`` (what the
  admin runs). imageport writes no ``.pvp``: its fields are not publicly
  documented, and PVS records the vDisk's properties when it is imported.

Registration commands come from the Citrix Provisioning PowerShell SDK
(``Citrix.PVS.SnapIn``): ``Import-PvsDisk`` adds an existing image file in a
store as a new vDisk (``-DiskLocatorName`` 1..52 characters, ``-StoreName``,
``-SiteName``, ``-VHDX`` for a VHDX file); ``Add-PvsDiskVersion`` adds
version files found in the store to an existing vDisk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from imageport.disks.convert import CHECKPOINT_SECONDS, Progress
from imageport.disks.io import FileSystem
from imageport.errors import InputError, VDiskExists, VDiskInUse
from imageport.models import DEFAULT_DISK_FORMAT, DiskFormat, PublishOptions, ShareDiskFormat
from imageport.names import check, vdisk_name
from imageport.platforms.pvs.powershell import comment, literal
from imageport.platforms.pvs.store import StoreFolder
from imageport.redaction import redact
from imageport.transfer.copy import copy_image


@dataclass(frozen=True)
class PublishPlan:
    vdisk: str
    file: str  # file name in the store
    version: int  # 0: a new vDisk; N: version N of an existing one
    format: ShareDiskFormat
    replaces: bool  # an existing base is replaced (--force)

    @property
    def stem(self) -> str:
        return self.file.rsplit(".", 1)[0]


@dataclass
class PublishResult:
    vdisk: str
    store: str
    file: str
    version: int
    format: str
    virtual_size: int
    data_written: int
    content_hash: str
    seconds: float
    resumed: bool
    attempts: int
    registration_file: str
    manifest_file: str
    registration: str
    verified: str | None = None  # what the content hash rests on (``ConvertResult.verified``)
    restarted: str | None = None  # why an interrupted earlier publish was not resumed, if it was not

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_publish(folder: StoreFolder, name: str, options: PublishOptions) -> PublishPlan:
    """Decide the file to write, refusing anything that would damage the store."""
    check("vDisk name", name, vdisk_name)
    # Decided before a stage starts (adapters.registry.disk_format_for: the share connector's); a direct
    # core call that left it unset gets the documented default.
    fmt = options.disk_format or DEFAULT_DISK_FORMAT
    ext = fmt.value
    names = folder.names()  # one listing of the store answers every question below
    existing = folder.vdisk_files(name, names)
    listed = ", ".join(f.name for f in existing)
    if not existing:
        plan = PublishPlan(name, f"{name}.{ext}", 0, fmt, replaces=False)
    elif options.new_version:
        base_ext = existing[0].name.rsplit(".", 1)[1].lower().removeprefix("a")
        if base_ext != ext:
            raise InputError(
                f"{folder.display}: vDisk {name} is a {base_ext.upper()} vDisk ({listed}); "
                f"publish its versions as {base_ext}"
            )
        version = max(f.version for f in existing) + 1
        plan = PublishPlan(name, f"{name}.{version}.{ext}", version, fmt, replaces=False)
        lock = f"{plan.stem}.lok".lower()
        if any(found.lower() == lock for found in folder.locks(name, names)):
            raise VDiskInUse(f"{folder.display}/{plan.file}: PVS lock file {plan.stem}.lok is present")
        return plan
    else:
        if not options.overwrite:
            raise VDiskExists(
                f"{folder.display}: vDisk {name} exists already ({listed}); use --new-version to add "
                f"version {max(f.version for f in existing) + 1}, or --force to replace it"
            )
        if any(f.version for f in existing):
            raise InputError(
                f"{folder.display}: vDisk {name} has versions ({listed}); replacing its base would break "
                "them. Use --new-version, or remove the vDisk in PVS first"
            )
        if existing[0].name.lower() != f"{name}.{ext}".lower():
            raise InputError(
                f"{folder.display}: vDisk {name} is stored as {existing[0].name}; replace it with the same "
                f"format ({existing[0].name.rsplit('.', 1)[1]}) or delete it first"
            )
        plan = PublishPlan(name, existing[0].name, 0, fmt, replaces=True)
    reasons = folder.in_use(name, names)
    if reasons:
        raise VDiskInUse(
            f"{folder.display}: vDisk {name} is in use: {'; '.join(reasons)}. Release it in the PVS console "
            "(or remove a stale lock file once no server uses the vDisk) and publish again"
        )
    return plan


def registration_text(plan: PublishPlan, folder: StoreFolder, options: PublishOptions) -> list[str]:
    """The PowerShell lines and console steps that register what was published.

    Every value is a single-quoted literal (``powershell.literal``) and every comment goes through
    ``powershell.comment``: a site name like ``Site1"; Write-Host "x`` stays a site name.
    """
    store = literal(options.pvs_store or "<StoreName>")  # a placeholder is a literal too: the line stays inert
    site = literal(options.pvs_site or "<SiteName>")
    vdisk = literal(plan.vdisk)
    vhdx = " -VHDX" if plan.format is ShareDiskFormat.VHDX else ""
    lines = [
        comment(f"imageport published {plan.file} to {folder.display}"),
        comment("Run on a PVS server (or wherever the Citrix Provisioning console is installed):"),
        "Import-Module " + literal("C:\\Program Files\\Citrix\\Provisioning Services Console\\Citrix.PVS.SnapIn.dll"),
    ]
    if plan.version == 0:
        lines += [
            f"Import-PvsDisk -DiskLocatorName {vdisk} -StoreName {store} -SiteName {site}{vhdx}",
            "",
            comment(
                f"Or in the Citrix Provisioning console: site {site} > vDisk Pool > right-click > "
                f"Add or Import Existing vDisk; pick store {store}, Search, select {vdisk}, Add."
            ),
        ]
    else:
        lines += [
            f"Add-PvsDiskVersion -DiskLocatorName {vdisk} -StoreName {store} -SiteName {site}",
            "",
            comment(
                f"{plan.file} is a complete (merged) base: version {plan.version} of {vdisk}. After adding it, "
                "promote it in the vDisk's Versions dialog when it has been tested."
            ),
        ]
    if not (options.pvs_store and options.pvs_site):
        lines.append(comment("Replace <StoreName>/<SiteName> with your PVS store and site (--pvs-store/--pvs-site)."))
    return lines


def publish(
    source: str,
    source_fs: FileSystem,
    folder: StoreFolder,
    name: str,
    options: PublishOptions,
    *,
    progress: Progress | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    source_format: DiskFormat | None = None,
) -> PublishResult:
    """Write ``source`` into the store as vDisk ``name`` (or its next version); see the module docstring."""
    started = time.monotonic()
    plan = plan_publish(folder, name, options)
    registration_file, manifest_file = f"{plan.stem}.register.txt", f"{plan.stem}.imageport.json"
    for file in (plan.file, registration_file, manifest_file):
        folder.path(file)  # refuses a link out of the store before anything is written
    converted = copy_image(
        source,
        source_fs,
        folder.path(plan.file),
        folder.fs,
        plan.format.writes,
        overwrite=plan.replaces,
        progress=progress,
        checkpoint_seconds=checkpoint_seconds,
        sleep=sleep,
        wait_lock=options.wait_lock,
        source_format=source_format,
        verify=options.verify.value,
    )
    lines = registration_text(plan, folder, options)
    assert converted.content_hash is not None  # resumable conversions always hash
    result = PublishResult(
        plan.vdisk,
        folder.display,
        plan.file,
        plan.version,
        plan.format.value,
        converted.virtual_size,
        converted.data_written,
        converted.content_hash,
        time.monotonic() - started,
        converted.resumed,
        converted.attempts,
        registration_file,
        manifest_file,
        "\n".join(lines),
        converted.verified,
        converted.restarted,
    )
    folder.write_text(registration_file, redact("\r\n".join(lines) + "\r\n"))  # read on Windows
    manifest = {
        **result.as_dict(),
        "source": source,
        "source_format": converted.source_format.value,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "registration": lines,
    }
    folder.write_text(manifest_file, redact(json.dumps(manifest, indent=2)) + "\n")
    return result
