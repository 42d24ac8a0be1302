"""A vSphere VM's disk: exported through a snapshot, cached by the VM's change version; the vSphere CE host.

A VM disk is not read as a file: it is exported (``export``). It is no upload target: a disk
imageport writes on vSphere is a datastore file (``adapters/datastore.py``: upload, prepare on a
vSphere CE, a VM for the prepared copy).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from imageport.adapters.locations import format_vm_disk, parse_vm_disk
from imageport.adapters.protocol import CeHost, Connectors, Copier, DiskAdapter, Opened
from imageport.disks.io import FileSystem
from imageport.engine.backend import CeBackend
from imageport.errors import InputError
from imageport.models import ExportSpec, Stage, TargetPlatform, UploadSpec, VsphereDiskRef
from imageport.preflight.limits import SourceFacts
from imageport.results import StageResult, from_vsphere_export
from imageport.transfer.copy import copy_image

# vSphere has no content change id for a disk without CBT: a stage reading one is cached this long at most.
EXPORT_CACHE_HOURS = 24


class VsphereDiskAdapter(DiskAdapter):
    kind = "vsphere"
    ref_type = VsphereDiskRef
    connector_kind = "vsphere"
    schemes = ("vsphere",)
    shape = "vsphere://CONNECTOR/VM[?disk=DISK&snapshot=SNAPSHOT]"
    title = "a vSphere VM disk"
    source_of = frozenset({Stage.EXPORT})
    target_platform = TargetPlatform.VSPHERE
    cache_expiry = timedelta(hours=EXPORT_CACHE_HOURS)

    def parse(self, text: str, field: str = "location") -> Any:
        return parse_vm_disk(text, self.schemes[0], field, self.shape, VsphereDiskRef)

    def format(self, ref: VsphereDiskRef) -> str:
        return format_vm_disk(self.schemes[0], ref)

    def name(self, ref: VsphereDiskRef) -> str:
        return ref.vm

    def identity(self, ref: VsphereDiskRef, connectors: Connectors) -> str:
        """By VM, disk, the VM's ``config.changeVersion`` and the named snapshot."""
        from imageport.platforms.vsphere.inventory import find_vm, retrieve  # pyVmomi only when used

        with connectors.build(ref.connector, "vsphere", self.describe(ref)) as session:
            si = session.si or session.connect()
            vm = find_vm(si, ref.vm)
            ((_, props),) = retrieve(si, [vm], ["config.changeVersion"])
            return f"vsphere {vm._moId} {ref.disk} {ref.snapshot} {props.get('config.changeVersion')}"


    def source_facts(self, ref: VsphereDiskRef, connectors: Connectors) -> SourceFacts:
        """The VM's ``config.firmware`` (bios / efi) and the disk's capacity, read from the inventory."""
        from imageport.platforms.vsphere.inventory import describe_vm, find_vm, select_disk  # pyVmomi when used

        with connectors.build(ref.connector, "vsphere", self.describe(ref)) as session:
            si = session.si or session.connect()
            info = describe_vm(si, find_vm(si, ref.vm))
        disk = select_disk(info, ref.disk)
        firmware = {"efi": "uefi", "bios": "bios"}.get(info.firmware or "")
        return SourceFacts(f"the source VM {ref.vm!r}", firmware, None, disk.capacity_bytes)

    def export(self, spec: ExportSpec, connectors: Connectors, output_fs: FileSystem, output: str, *,
               progress: Any, run_id: str, copy: Copier = copy_image) -> Any:  # fmt: skip
        """The disk as of a snapshot this run takes and removes (or the named one); a single base file is
        copied with ``copy``, a delta chain streams through NFC (never fanned out)."""
        from imageport.platforms.vsphere.export import export_vm_disk  # pyVmomi only when used

        source = spec.source
        with connectors.build(source.connector, "vsphere", self.describe(source)) as session:
            exported = export_vm_disk(
                session, source.vm, output, output_fs, spec.disk_format.writes, disk=source.disk,
                snapshot=source.snapshot, run_id=run_id, tags=spec.tags, progress=progress, digests=spec.hash_disk,
                wait_lock=spec.wait_lock, verify=spec.verify.value, copy=copy,
            )  # fmt: skip
        return from_vsphere_export(exported)

    def write_image(self, spec: UploadSpec, source: Opened, connectors: Connectors, *, progress: Any,
                    run_id: str, checkpoint_dir: Any) -> StageResult:  # fmt: skip
        raise InputError(
            "target: a vSphere VM's disk is read by exporting it; upload to a datastore disk (kind datastore, "
            "create_vm or attach_to_vm for a VM)"
        )

    def diagnostics_source(self, ref: VsphereDiskRef, connectors: Connectors) -> Any:
        raise InputError(
            f"diagnostics: {self.format(ref)} is a VM's disk, which a CE does not copy while the VM owns it; "
            "name its file on the datastore (datastore://CONNECTOR/DATASTORE/path.vmdk) or export the VM first"
        )

    def prepared(self, ref: VsphereDiskRef, name: str | None = None, snapshot: str | None = None) -> Any:
        raise InputError(
            "targets: a vsphere VM disk is a source; a vSphere target is a datastore disk (kind datastore)"
        )


def _vsphere_backend(config: Any) -> CeBackend:
    from imageport.engine.vsphere import VsphereBackend  # pyVmomi only when used

    return VsphereBackend(config.build())


VSPHERE_CE = CeHost("vsphere", _vsphere_backend,
                    in_use=lambda config: bool(config.ce_template))  # no template: imageport never made CEs there
