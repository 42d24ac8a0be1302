"""A XenServer VM's disk: exported through a marked snapshot over the host's ``/export_raw_vdi``; the reaper's
XenServer host (leaked snapshots).

A VM disk is not read as a file: it is exported (``export``). XenServer is a source only here: the
image goes on to a share, Azure, vSphere or the local platform (no XenServer upload target yet).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from imageport.adapters.locations import format_vm_disk, parse_vm_disk
from imageport.adapters.protocol import CeHost, Connectors, Copier, DiskAdapter
from imageport.disks.io import FileSystem
from imageport.engine.backend import CeBackend
from imageport.engine.job import AgentMode
from imageport.engine.lifecycle import DEFAULT_TIMEOUTS, EXPIRY_MARGIN_S
from imageport.engine.tags import CeTags
from imageport.models import ExportSpec, Stage, XenServerDiskRef
from imageport.platforms.runs import process_run_id
from imageport.preflight.limits import SourceFacts
from imageport.results import StageResult, from_xenserver_export
from imageport.transfer.copy import copy_image

# xapi has no content change id for a VDI: a stage reading one is cached this long at most (as vSphere's).
EXPORT_CACHE_HOURS = 24
# A leaked export snapshot may be reaped once an export could no longer be running (Citrix's export timeout + 1 h).
SNAPSHOT_TTL_S = DEFAULT_TIMEOUTS[AgentMode.EXPORT] + EXPIRY_MARGIN_S


class XenServerDiskAdapter(DiskAdapter):
    kind = "xenserver"
    ref_type = XenServerDiskRef
    connector_kind = "xenserver"
    schemes = ("xenserver",)
    shape = "xenserver://CONNECTOR/VM[?disk=USERDEVICE&snapshot=SNAPSHOT]"
    title = "a XenServer VM disk"
    source_of = frozenset({Stage.EXPORT})
    cache_expiry = timedelta(hours=EXPORT_CACHE_HOURS)

    def parse(self, text: str, field: str = "location") -> Any:
        return parse_vm_disk(text, self.schemes[0], field, self.shape, XenServerDiskRef)

    def format(self, ref: XenServerDiskRef) -> str:
        return format_vm_disk(self.schemes[0], ref)

    def name(self, ref: XenServerDiskRef) -> str:
        return ref.vm

    def identity(self, ref: XenServerDiskRef, connectors: Connectors) -> str:
        """By VM uuid, the disk's VDI uuid and the named snapshot (its uuid and time): no change id exists."""
        from imageport.platforms.xenserver.inventory import describe, find_snapshot, find_vm, select_disk

        with connectors.build(ref.connector, "xenserver", self.describe(ref)) as session:
            api = session.api
            vm = describe(api, find_vm(api, ref.vm))
            disk = select_disk(vm, ref.disk)
            snapshot = "-"
            if ref.snapshot is not None:
                snap = find_snapshot(api, vm, ref.snapshot)
                snapshot = f"{api.VM.get_uuid(snap)} {api.VM.get_snapshot_time(snap)}"
            return f"xenserver {vm.uuid} {disk.userdevice} {disk.vdi_uuid} {disk.virtual_size} {snapshot}"

    def source_facts(self, ref: XenServerDiskRef, connectors: Connectors) -> SourceFacts:
        """The VM's firmware (HVM-boot-params ``firmware``: uefi / bios) and the disk's virtual size."""
        from imageport.platforms.xenserver.inventory import describe, find_vm, select_disk

        with connectors.build(ref.connector, "xenserver", self.describe(ref)) as session:
            vm = describe(session.api, find_vm(session.api, ref.vm))
        firmware = vm.firmware if vm.firmware in ("uefi", "bios") else None
        return SourceFacts(f"the source VM {ref.vm!r}", firmware, None, select_disk(vm, ref.disk).virtual_size)

    def export(self, spec: ExportSpec, connectors: Connectors, output_fs: FileSystem, output: str, *,
               progress: Any, run_id: str, copy: Copier = copy_image) -> StageResult:  # fmt: skip
        """The disk as of a snapshot this run takes (marked for the reaper) and destroys, or the named one.

        Its own stream (not ``copy``): a port's targets upload from the staging file afterwards.
        """
        from imageport.platforms.xenserver.export import export_vm_disk  # XenAPI only when used

        source = spec.source
        marks = export_marks(run_id, spec.tags)
        with connectors.build(source.connector, "xenserver", self.describe(source)) as session:
            exported = export_vm_disk(
                session, source.vm, output, output_fs, spec.disk_format.writes, marks=marks, disk=source.disk,
                snapshot=source.snapshot, progress=progress, digests=spec.hash_disk, wait_lock=spec.wait_lock,
                verify=spec.verify.value,
            )  # fmt: skip
        return from_xenserver_export(exported)


def export_marks(run_id: str | None = None, tags: dict[str, str] | None = None) -> dict[str, str]:
    """What an export's snapshot is marked with (``other_config``): its run (a Prefect flow run's id; a plain
    CLI export's process), an expiry, and the user's ``tags`` beside them (imageport's marks win)."""
    return CeTags.for_run(run_id or process_run_id(), Stage.EXPORT.value, SNAPSHOT_TTL_S, user=tags).as_dict()


def _leftovers_backend(config: Any) -> CeBackend:
    from imageport.engine.xenserver import XenServerLeftovers  # XenAPI only when used

    return XenServerLeftovers(config)


# No compositing engine runs on XenServer; the reaper still walks it for snapshots a dead export left.
XENSERVER_LEFTOVERS = CeHost("xenserver", _leftovers_backend)
