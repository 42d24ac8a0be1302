"""Prepare: plan, then (unless a dry run) apply, re-read and verify -- in one appliance launch.

Run it on a copy: ``prepare_copy`` (``imageport prepare IMAGE --output COPY``,
the prepare task) copies first and prepares the copy, deleting it if prepare
fails, so the source stays byte-identical and nothing half-prepared is left
under the output name.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imageport.disks.convert import Progress, hash_disk
from imageport.disks.detect import editable_format
from imageport.disks.io import FileSystem
from imageport.disks.local_files import LOCAL
from imageport.errors import GuestError, InputError
from imageport.guest import firstboot
from imageport.guest.appliance import Timings, appliance
from imageport.guest.errors import translate_guestfs_errors
from imageport.guest.facts import GuestFacts, gather
from imageport.guest.installers import Staging
from imageport.guest.plan import SOFTWARE, SYSTEM, FileChange, Plan, PrepareTarget, RegChange, plan_registry
from imageport.guest.registry import OpenHive, RegValue
from imageport.hashing import file_sha256
from imageport.models import DiskFormat
from imageport.transfer.copy import copy_image


@dataclass
class PrepareResult:
    image: str
    platform: str
    generation: str
    provisioning: str
    dry_run: bool
    changes: list[str]
    warnings: list[str]
    applied: int
    verified: bool
    facts: dict[str, Any]
    launch_s: float
    work_s: float
    launches: int
    seconds: float
    firstboot_actions: list[str] = field(default_factory=list)
    # Each action staged: {"name", "what", "installer": StagedInstaller fields or None}, in run order.
    pending_actions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hive_path(facts: GuestFacts, hive: str) -> str:
    return facts.system_hive if hive == SYSTEM else facts.software_hive


def _existing_sha(g: Any, path: str) -> str | None:
    return g.checksum("sha256", path) if g.is_file(path) else None


def build_plan(g: Any, facts: GuestFacts, target: PrepareTarget, staging: Staging | None) -> Plan:
    hives: dict[str, OpenHive] = {}

    def read(hive: str, key: str) -> dict[str, RegValue] | None:
        return hives[hive].values_or_none(key)

    hives[SYSTEM] = OpenHive(g, facts.system_hive, write=False)
    try:
        plan = plan_registry(facts, target, read, lambda hive, key: hives[hive].subkeys(key))
    finally:
        hives.pop(SYSTEM).close(commit=False)

    actions, notes = firstboot.actions(target.options, staging.installers if staging else [], facts.components)
    plan.warnings += notes
    plan.actions = [a.name for a in actions]
    plan.pending = [
        {"name": a.name, "what": a.why, "installer": a.installer.model_dump(mode="json") if a.installer else None}
        for a in actions
    ]
    if actions:
        hives[SOFTWARE] = OpenHive(g, facts.software_hive, write=False)
        try:
            for key, values in firstboot.registration().items():
                current = read(SOFTWARE, key) or {}
                for name, (kind, value) in values.items():
                    old = current.get(name)
                    if old is None or old.kind != kind or old.value != value:
                        previous = None if old is None else old.value
                        plan.registry.append(RegChange(SOFTWARE, key, name, kind, previous, value, "first boot"))
        finally:
            hives.pop(SOFTWARE).close(commit=False)
        scripts = [("run.cmd", firstboot.runner(), "first-boot runner")]
        scripts += [(a.name, "@echo off\r\n" + a.script + "\r\n", a.why) for a in actions]
        for name, text, why in scripts:
            path = posixpath.join(firstboot.GUEST_DIR, name)
            data = text.encode()
            new = hashlib.sha256(data).hexdigest()
            old = _existing_sha(g, path)
            if old != new:
                plan.files.append(FileChange(path, data, None, len(data), old, new, why))
        for installer in (a.installer for a in actions if a.installer):
            local = staging.files[installer.name] if staging else ""
            path = posixpath.join(firstboot.STAGED_DIR, installer.name)
            new = file_sha256(local)
            if new != installer.sha256:  # the file delivered to this CE is not the one checked
                raise GuestError(f"{installer.name}: sha256 {new} differs from the checked {installer.sha256}")
            old = _existing_sha(g, path)
            if old != new:
                plan.files.append(FileChange(path, None, local, installer.size, old, new, "staged installer"))
    return plan


def _by_hive(plan: Plan) -> Iterator[tuple[str, list[RegChange]]]:
    """The plan's registry changes grouped by hive (only one hive can be open at a time)."""
    for hive in (SYSTEM, SOFTWARE):
        changes = [c for c in plan.registry if c.hive == hive]
        if changes:
            yield hive, changes


def apply_plan(g: Any, facts: GuestFacts, plan: Plan) -> int:
    applied = 0
    for hive, changes in _by_hive(plan):
        opened = OpenHive(g, _hive_path(facts, hive), write=True)
        try:
            for change in changes:
                if change.new is None:
                    opened.delete_value(change.key, change.name)
                else:
                    opened.set(change.key, change.name, change.kind, change.new)
                applied += 1
        except BaseException:
            opened.close(commit=False)  # nothing of this hive is written
            raise
        opened.close(commit=True)
    for change in plan.files:
        with translate_guestfs_errors(f"write {change.path}"):
            g.mkdir_p(posixpath.dirname(change.path))
            if change.content is not None:
                g.write(change.path, change.content)
            else:
                g.upload(change.source, change.path)
        applied += 1
    return applied


def verify(g: Any, facts: GuestFacts, plan: Plan) -> list[str]:
    """Re-read everything the plan wrote; return what does not match."""
    problems = []
    for hive, changes in _by_hive(plan):
        opened = OpenHive(g, _hive_path(facts, hive), write=False)
        try:
            for change in changes:
                got = opened.get(change.key, change.name)
                if change.new is None:
                    if got is not None:
                        problems.append(f"{hive}\\{change.key}\\{change.name} still present")
                elif got is None or got.kind != change.kind or got.value != change.new:
                    problems.append(f"{hive}\\{change.key}\\{change.name} reads {got}, wanted {change.new!r}")
        finally:
            opened.close(commit=False)
    for change in plan.files:
        if _existing_sha(g, change.path) != change.new_sha256:
            problems.append(f"{change.path} does not hold what was written")
    return problems


def check_md5(path: str, expected: str) -> None:
    """Refuse the disk at ``path`` unless its MD5 is ``expected`` (Citrix's ``-Md5Hash``), before anything changes.

    Decision -- over which bytes: the disk's *virtual content* (every byte of its ``virtual_size``, unallocated
    ranges as zeros), the MD5 an export with ``hash_disk`` reports (Citrix pairs ``-HashDisk`` with
    ``-Md5Hash``). It does not depend on the container, so the value survives export (VHDX on the share) and
    upload (a fixed VHD, an Azure managed disk, a flat VMDK). It is computed where the data is read: by the agent
    on whichever compositing engine holds the copy (the local CE's file, the disk attached to an Azure or vSphere
    CE), or by ``imageport prepare`` on the image it is given -- before the appliance is launched.
    """
    got = hash_disk(path, md5=True).md5
    if got != expected.lower():
        raise InputError(
            f"expected_md5: the disk's MD5 (of its virtual content) is {got}, not {expected.lower()}; nothing was "
            "changed (check that this is the image you hashed, or leave expected_md5 out)"
        )


def prepare_image(
    path: str,
    target: PrepareTarget,
    *,
    dry_run: bool = False,
    staging: Staging | None = None,
) -> PrepareResult:
    started = time.monotonic()
    if target.options.expected_md5:
        check_md5(path, target.options.expected_md5)
    timings = Timings()
    applied, verified = 0, False
    with appliance(path, readonly=dry_run, timings=timings) as g:
        facts = gather(g)
        plan = build_plan(g, facts, target, staging)
        if not dry_run and not plan.empty:
            with translate_guestfs_errors(f"mount {facts.root} for writing"):
                g.umount_all()
                g.mount(facts.root, "/")
            applied = apply_plan(g, facts, plan)
            problems = verify(g, facts, plan)
            if problems:
                raise GuestError(f"{path}: prepare did not verify: " + "; ".join(problems[:5]))
            verified = True
    return PrepareResult(
        path,
        target.platform.value,
        target.generation.value,
        target.options.provisioning_type.value,
        dry_run,
        plan.lines(),
        plan.warnings,
        applied,
        verified,
        facts.as_dict(),
        timings.launch_s,
        timings.work_s,
        timings.launches,
        time.monotonic() - started,
        plan.actions,
        plan.pending,
    )


def prepare_copy(
    source: str,
    source_fs: FileSystem,
    output: str,
    target: PrepareTarget,
    *,
    staging: Staging | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    source_format: DiskFormat | None = None,
) -> PrepareResult:
    """Copy ``source`` to the local file ``output`` (same container; a stream VMDK becomes VHDX, which
    can be opened in place), prepare the copy, and delete it if prepare fails -- a half-prepared copy
    must not look usable. The source is only read."""
    fmt = editable_format(source, source_fs, source_format)
    copy_image(
        source, source_fs, output, LOCAL, fmt, overwrite=overwrite, progress=progress, source_format=source_format
    )
    try:
        return prepare_image(output, target, staging=staging)
    except BaseException:
        Path(output).unlink(missing_ok=True)
        raise
