"""Running the checks of a plan: every problem found, none stopping the others.

In order: the connectors (each exists, is of the kind its references need, and logs in: its
``check()``); each reference's kind in its role (the adapters' ``source_of``/``target_of``); the
outputs (free, or the stage's overwrite set, or an earlier run's result the stage cache will reuse;
a vDisk by publish's own rules) and their folders (a write+delete probe); the source's firmware and
size against each target; the installers prepare stages. A check whose connector failed is skipped
(its problem is already listed). Nothing is created: the probes remove what they wrote. What only a
platform can say (its source's firmware and size, whether an output exists, the folder probe) its
adapter says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blocks.registry import find_connector
from blocks.resolve import CONNECTORS, describe_ref, store_folder
from imageport.adapters.registry import ADAPTERS, adapter_for, ce_host
from imageport.errors import ImageportError, InputError
from imageport.models import Stage, TargetPlatform
from imageport.platforms.azure.disks import UPLOAD_STATES
from imageport.platforms.pvs.publish import plan_publish
from imageport.preflight.limits import EXISTS, firmware_problem, size_problems
from imageport.preflight.report import CheckReport, Checks
from tasks.caching import stage_cached
from tasks.checks.plan import CheckPlan, Planned, field_of
from tasks.refusals import in_spec_terms


def run_checks(plan: CheckPlan) -> CheckReport:
    """Every check of ``plan``; see the module docstring."""
    checks = plan.checks
    usable = _connectors(plan, checks)
    _roles(plan, checks)
    for planned in plan.stages:
        if _usable(planned.writes, usable) and (planned.stage is not Stage.PUBLISH or _usable(planned.reads, usable)):
            _output(plan, planned, checks)
    probed: set[tuple[str, str]] = set()
    for planned in plan.stages:
        if _usable(planned.writes, usable):
            _probe(planned, checks, probed)
    if plan.report is not None and _usable(plan.report[1], usable):  # a report's files (diagnostics)
        field, ref = plan.report
        _probe_folder(ref, str(Path(ref.path).parent).removeprefix("."), field, False, checks, probed)
    if plan.source is not None and _usable(plan.source[1], usable):
        _source(plan, checks)
    for planned in plan.stages:
        installers = getattr(planned.spec, "installers", None)
        if planned.stage is Stage.PREPARE and installers is not None and _usable(installers, usable):
            _installers(planned, checks)
        if planned.stage is Stage.PREPARE and getattr(planned.spec, "boot_diagnostics", False):
            _console(planned, checks)
    return checks.report()


def _console(planned: Planned, checks: Checks) -> None:
    """Boot diagnostics need a CE that boots: a machine with a console, not the local CE's process."""
    from imageport.engine.local import BOOTLESS

    disk: Any = planned.reads
    with checks.of(field_of(planned.options, "boot_diagnostics"), "the compositing engine has a console"):
        if not ce_host(adapter_for(disk).connector_kind, disk.connector).boots:
            raise InputError(BOOTLESS)


def _usable(ref: Any, usable: set[str]) -> bool:
    return ref is not None and ref.connector in usable


def _connectors(plan: CheckPlan, checks: Checks) -> set[str]:
    """Each named connector once: it exists, suits every reference naming it, and logs in."""
    users: dict[str, list[tuple[str, Any]]] = {}
    for field, ref in plan.refs:
        users.setdefault(ref.connector, []).append((field, ref))
    usable = set()
    for name, named in users.items():
        check = f"connector {name!r} exists and logs in"
        try:
            kind, block = find_connector(name)
        except ImageportError as exc:
            for field, _ in named:
                checks.problem(f"{field}.connector", check, str(exc))
            continue
        wrong = [(field, ref) for field, ref in named if adapter_for(ref).connector_kind != kind]
        for field, ref in wrong:
            needs = adapter_for(ref).connector_kind
            checks.problem(f"{field}.connector", check,
                           f"{name!r} is a {kind} connector; a {ref.kind} reference needs a {needs} one")  # fmt: skip
        if wrong:
            continue
        try:
            proven = block.build().check()
        except ImageportError as exc:
            for field, _ in named:
                checks.problem(f"{field}.connector", check, f"connector {name!r}: {exc}")
            continue
        checks.passed(f"{named[0][0]}.connector", f"connector {name!r} ({kind}): {'; '.join(proven)}")
        usable.add(name)
    return usable


def _roles(plan: CheckPlan, checks: Checks) -> None:
    for planned in plan.stages:
        stage = planned.stage
        for role, ref, field in (("source", planned.reads, planned.reads_field),
                                 ("target", planned.writes, planned.writes_field)):  # fmt: skip
            if ref is None:
                continue  # no output reference: the read side's kind was refused already
            check = f"a {ref.kind} reference can be the {role} of {stage.value}"
            if adapter_for(ref).can(role, stage):
                checks.passed(field, check)
            else:
                kinds_ok = ", ".join(kind for kind, adapter in ADAPTERS if adapter.can(role, stage)) or "none"
                checks.problem(field, check, f"a {ref.kind} reference cannot be the {role} of {stage.value} "
                                             f"(it can be: {kinds_ok})")  # fmt: skip


def _reused(plan: CheckPlan, planned: Planned) -> bool:
    """The stage will not run: an earlier run's result for this very spec and input is in the stage cache."""
    if plan.refresh or planned.task is None:
        return False
    return stage_cached(planned.task, planned.stage.value, planned.spec, planned.reads)


def _output(plan: CheckPlan, planned: Planned, checks: Checks) -> None:
    """The output is free, or may be replaced, or belongs to a result the stage cache reuses."""
    if planned.stage is Stage.PUBLISH:
        _vdisk(plan, planned, checks)
        return
    ref = planned.writes
    with checks.of(planned.writes_field, f"{describe_ref(ref)} is free"):
        state = adapter_for(ref).output_exists(ref, CONNECTORS)
        if state is None or planned.overwrite or (planned.stage is Stage.UPLOAD and state in UPLOAD_STATES):
            return  # free, replaced on purpose, or a half-uploaded disk the upload resumes
        if _reused(plan, planned):
            return
        if planned.overwrite is None:
            raise InputError(f"{describe_ref(ref)} exists already; remove it or name another file")
        overwrite = field_of(planned.options, "overwrite")
        shown = "" if state == EXISTS else f" ({state})"
        raise InputError(f"{describe_ref(ref)} exists already{shown}; set {overwrite} to replace it")


def _vdisk(plan: CheckPlan, planned: Planned, checks: Checks) -> None:
    """Publish's own rules (``plan_publish``): the vDisk name is free, or a new version or a replacement may
    be written, and no version of it is in use."""
    spec: Any = planned.spec
    with checks.of(planned.name_field, f"vDisk {spec.name!r} can be published in {describe_ref(spec.store)}"):
        try:
            with store_folder(spec.store) as folder:
                plan_publish(folder, spec.name, spec)
        except ImageportError as exc:
            if _reused(plan, planned):
                return
            raise InputError(in_spec_terms(str(exc), planned.options)) from None


def _probe(planned: Planned, checks: Checks, probed: set[tuple[str, str]]) -> None:
    """A write+delete probe in the folder a file output goes to (once per folder)."""
    ref = planned.writes
    path = getattr(ref, "path", None)  # only a file output has a folder
    if path is None:
        return
    folder = path if planned.stage is Stage.PUBLISH else str(Path(path).parent).removeprefix(".")
    makes_folders = planned.stage in (Stage.UPLOAD, Stage.PREPARE)  # a platform makes its own folders
    _probe_folder(ref, folder, planned.writes_field, makes_folders, checks, probed)


def _probe_folder(ref: Any, folder: str, field: str, makes_folders: bool, checks: Checks,
                  probed: set[tuple[str, str]]) -> None:  # fmt: skip
    if (ref.connector, folder) in probed:
        return
    probed.add((ref.connector, folder))
    with checks.of(field, f"the folder {folder or '.'} of {describe_ref(ref)} is writable"):
        adapter_for(ref).probe_folder(ref, folder, CONNECTORS, makes_folders)


def _source(plan: CheckPlan, checks: Checks) -> None:
    """The source's firmware and size (its VM configuration, or its first sectors) against every target."""
    assert plan.source is not None
    field, ref = plan.source
    try:
        facts = adapter_for(ref).source_facts(ref, CONNECTORS)
    except ImageportError as exc:
        checks.problem(field, "the source can be inspected", str(exc))
        return
    if facts is None:
        return
    size = f"{facts.virtual_size:,} bytes" if facts.virtual_size is not None else "size unknown"
    checks.passed(field, f"{facts.described}: firmware {facts.firmware or 'unknown'}, {size}")
    if facts.virtual_size is not None:
        for message in size_problems(facts.virtual_size, facts.style, None, facts.described):
            checks.problem(field, "an MBR disk is at most 2 TiB", message)
    for boot in plan.boots:
        check = f"{facts.described} boots as {boot.platform.value} {boot.generation.value}"
        reason = firmware_problem(boot.platform, boot.generation, facts.firmware, boot.provisioning, facts.described)
        if reason:
            checks.problem(boot.generation_field, check, reason)
        else:
            checks.passed(boot.generation_field, check)
        if facts.virtual_size is not None and boot.platform is TargetPlatform.AZURE:
            check = f"{facts.described} fits an Azure direct upload"
            found = size_problems(facts.virtual_size, None, boot.generation, facts.described)
            for message in found:
                checks.problem(boot.field, check, message)
            if not found:
                checks.passed(boot.field, check)


def _installers(planned: Planned, checks: Checks) -> None:
    """The installers folder is where the CE that runs can read it and holds what the options stage."""
    from tasks.prepare import checked_installers

    spec: Any = planned.spec
    what = "the installers folder holds what the options stage (name, version, signer, sha256)"
    with checks.of(field_of(planned.options, "installers"), what), checked_installers(spec):
        pass
