"""A Nutanix AHV VM's disk (Prism Central v4): exported through a temporary disk image; a source only.

A VM disk is not read as a file: it is exported (``platforms.ahv.export``: the disk cloned into an
image, the image's bytes read in ranges, the image deleted). Prism offers no content change id for
a VM disk, so a stage reading one is cached for ``EXPORT_CACHE_HOURS`` at most, like vSphere's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from imageport.adapters.locations import ALWAYS, SEGMENT, Location, escape, query_text
from imageport.adapters.protocol import CeHost, Connectors, Copier, DiskAdapter, Opened
from imageport.disks.io import FileSystem
from imageport.engine.tags import CeTags
from imageport.errors import InputError
from imageport.models import ExportSpec, Stage, UploadSpec
from imageport.models.refs import AhvDiskRef
from imageport.platforms.runs import process_run_id
from imageport.preflight.limits import SourceFacts
from imageport.results import StageResult, from_ahv_export
from imageport.transfer.copy import copy_image

EXPORT_CACHE_HOURS = 24
VM_OPTIONS = ("disk",)


class AhvDiskAdapter(DiskAdapter):
    kind = "ahv"
    ref_type = AhvDiskRef
    connector_kind = "ahv"
    schemes = ("ahv",)
    shape = "ahv://CONNECTOR/VM[?disk=scsi.0]"
    title = "a Nutanix AHV VM disk"
    source_of = frozenset({Stage.EXPORT})
    cache_expiry = timedelta(hours=EXPORT_CACHE_HOURS)

    def parse(self, text: str, field: str = "location") -> Any:
        loc = Location(text, self.schemes[0], field, self.shape)
        options = loc.options(VM_OPTIONS)
        return loc.model(AhvDiskRef, connector=loc.connector, vm=loc.decode(loc.rest), **options)

    def format(self, ref: AhvDiskRef) -> str:
        return f"ahv://{escape(ref.connector, SEGMENT)}/{escape(ref.vm, ALWAYS)}{query_text(disk=ref.disk)}"

    def name(self, ref: AhvDiskRef) -> str:
        return ref.vm

    def identity(self, ref: AhvDiskRef, connectors: Connectors) -> str:
        """By the VM's extId and the disk's diskExtId and size (a disk replaced or grown is a new input)."""
        from imageport.platforms.ahv.inventory import find_vm, select_disk  # the SDK only when used

        with connectors.build(ref.connector, "ahv", self.describe(ref)) as session:
            vm = find_vm(session, ref.vm)
        disk = select_disk(vm, ref.disk)
        return f"ahv {vm.ext_id} {disk.label} {disk.disk_ext_id} {disk.capacity_bytes}"

    def source_facts(self, ref: AhvDiskRef, connectors: Connectors) -> SourceFacts:
        """The VM's boot config (LegacyBoot: bios, UefiBoot: uefi) and the disk's size."""
        from imageport.platforms.ahv.inventory import find_vm, select_disk

        with connectors.build(ref.connector, "ahv", self.describe(ref)) as session:
            vm = find_vm(session, ref.vm)
        return SourceFacts(f"the source VM {ref.vm!r}", vm.firmware, None, select_disk(vm, ref.disk).capacity_bytes)

    def export(self, spec: ExportSpec, connectors: Connectors, output_fs: FileSystem, output: str, *,
               progress: Any, run_id: str, copy: Copier = copy_image) -> StageResult:  # fmt: skip
        """The disk as a temporary image this run makes, marked for the reaper, and deletes.

        Its own stream (not ``copy``): a port's targets upload from the staging file afterwards.
        """
        from imageport.platforms.ahv.export import export_vm_disk

        source = spec.source
        with connectors.build(source.connector, "ahv", self.describe(source)) as session:
            exported = export_vm_disk(
                session, source.vm, output, output_fs, spec.disk_format.writes, tags=export_marks(session, run_id),
                user_tags=spec.tags, disk=source.disk, progress=progress, digests=spec.hash_disk,
                wait_lock=spec.wait_lock, verify=spec.verify.value,
            )  # fmt: skip
        return from_ahv_export(exported)

    def write_image(self, spec: UploadSpec, source: Opened, connectors: Connectors, *, progress: Any,
                    run_id: str, checkpoint_dir: Any) -> StageResult:  # fmt: skip
        raise InputError("target: a Nutanix AHV VM's disk is a source only (exported, never uploaded to)")

    def prepared(self, ref: AhvDiskRef, name: str | None = None, snapshot: str | None = None) -> Any:
        raise InputError("targets: an ahv VM disk is a source; name an Azure disk, a datastore disk or a local file")


def export_marks(session: Any, run_id: str | None = None) -> dict[str, str]:
    """imageport's marks on an export's image: its run (a Prefect flow run's id; a plain CLI export's process)
    and an expiry after the connector's ``image_ttl_hours``."""
    return CeTags.for_run(run_id or process_run_id(), Stage.EXPORT.value, session.config.image_ttl_hours * 3600).own()


def _leftovers_backend(config: Any) -> Any:
    from imageport.engine.ahv import AhvLeftovers  # the SDKs only when used

    return AhvLeftovers(config)


# AHV hosts no CE; this row makes the reaper (and the crash hooks) find an export's leaked image by its marks.
AHV_LEFTOVERS = CeHost("ahv", _leftovers_backend)
