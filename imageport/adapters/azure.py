"""Azure managed disks and snapshots, and the Azure compositing engine.

A disk or snapshot is read through a read grant revoked afterwards, always; an upload creates
(or resumes) a managed disk; a prepare runs on an Azure CE and keeps its output as a disk (or a
snapshot when ``output_snapshot_name`` is set).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from imageport.adapters.locations import SEGMENT, Location, escape
from imageport.adapters.protocol import CeHost, Connectors, DiskAdapter, Opened
from imageport.disks.detect import open_disk
from imageport.disks.io import FileSystem
from imageport.engine.backend import CeBackend
from imageport.errors import PlatformNotFound
from imageport.models import AzureDiskRef, AzureSnapshotRef, PrepareSpec, Stage, TargetPlatform, UploadSpec
from imageport.names import prepared_name
from imageport.platforms.azure.disks import disk_state, get_or_none, read_managed_disk, upload_to_managed_disk
from imageport.preflight.limits import EXISTS, SourceFacts
from imageport.results import StageResult, from_managed_disk_upload

READ_STAGES = frozenset({Stage.EXPORT, Stage.PREPARE, Stage.PUBLISH})


class AzureDiskAdapter(DiskAdapter):
    kind = "azure-disk"
    ref_type = AzureDiskRef
    connector_kind = "azure"
    schemes = ("azure-disk",)
    shape = "azure-disk://CONNECTOR/RESOURCE_GROUP/DISK"
    title = "an Azure managed disk"
    source_of = READ_STAGES
    target_of = frozenset({Stage.UPLOAD, Stage.PREPARE})
    target_platform = TargetPlatform.AZURE
    snapshot = False
    finalizes = True
    stages_installers = True  # delivered to the CE as blobs behind read-only SAS URLs
    streams_upload = True

    def parse(self, text: str, field: str = "location") -> Any:
        loc = Location(text, self.schemes[0], field, self.shape)
        loc.options(())
        if not loc.connector:
            raise loc.refuse()
        resource_group, name = loc.segments(2)
        if "/" in name:
            raise loc.refuse()
        return loc.model(self.ref_type, connector=loc.connector, resource_group=resource_group, name=name)

    def format(self, ref: AzureDiskRef) -> str:
        parts = (ref.connector, ref.resource_group, ref.name)
        return f"{self.schemes[0]}://" + "/".join(escape(p, SEGMENT) for p in parts)

    def name(self, ref: AzureDiskRef) -> str:
        return ref.name

    def _session(self, ref: AzureDiskRef, connectors: Connectors) -> Any:
        return connectors.build(ref.connector, "azure", self.describe(ref))

    @contextlib.contextmanager
    def open_read(self, ref: AzureDiskRef, connectors: Connectors) -> Iterator[tuple[FileSystem, str]]:
        """The disk as a fixed VHD through a read grant, revoked when the block ends."""
        with read_managed_disk(self._session(ref, connectors), ref.resource_group, ref.name,
                               snapshot=self.snapshot) as fs:  # fmt: skip
            yield fs, ref.name

    def identity(self, ref: AzureDiskRef, connectors: Connectors) -> str:
        """By id, state and creation time."""
        found = self._found(ref, connectors)
        if found is None:
            return "missing"
        return f"azure {found.id} {disk_state(found)} {found.properties.time_created}"


    def _found(self, ref: AzureDiskRef, connectors: Connectors) -> Any:
        """The disk or snapshot, or None when there is none of that name."""
        compute = self._session(ref, connectors).compute()
        operations = compute.snapshots if self.snapshot else compute.disks
        return get_or_none(operations, ref.kind, ref.resource_group, ref.name)

    def source_facts(self, ref: AzureDiskRef, connectors: Connectors) -> SourceFacts:
        """The recorded Hyper-V generation (V1 boots BIOS, V2 UEFI) and the size; a missing source is refused."""
        found = self._found(ref, connectors)
        if found is None:
            raise PlatformNotFound(f"{self.describe(ref)} does not exist")
        generation = getattr(found.properties, "hyper_v_generation", None)
        generation = str(getattr(generation, "value", generation) or "")  # an enum from the SDK, or a string
        firmware = {"V1": "bios", "V2": "uefi"}.get(generation)
        return SourceFacts(f"the source {self.title} {ref.name!r}", firmware, None, found.properties.disk_size_bytes)

    def output_exists(self, ref: AzureDiskRef, connectors: Connectors) -> str | None:
        """The disk's state (a snapshot: ``EXISTS``), or None when there is none of that name."""
        found = self._found(ref, connectors)
        if found is None:
            return None
        return EXISTS if self.snapshot else disk_state(found)

    def write_image(self, spec: UploadSpec, source: Opened, connectors: Connectors, *, progress: Any,
                    run_id: str, checkpoint_dir: Any) -> StageResult:  # fmt: skip
        """A managed disk made from the image; a retry resumes what arrived."""
        target = spec.target
        session = self._session(target, connectors)
        fs, path = source
        with open_disk(path, spec.source.format, fs=fs) as reader:
            outcome = upload_to_managed_disk(
                session, reader, target.resource_group, target.name, sku=spec.sku, tags=spec.tags,
                hyper_v_generation=spec.hyper_v_generation, os_type=spec.os_type, overwrite=spec.overwrite,
                threads=spec.threads, checkpoint_dir=checkpoint_dir, progress=progress, run_id=run_id,
                verify=spec.verify.value,
            )  # fmt: skip
        return from_managed_disk_upload(outcome)

    def prepared(self, ref: AzureDiskRef, name: str | None = None, snapshot: str | None = None) -> AzureDiskRef:
        """A managed disk beside the source: ``name``, or ``NAME-prepared``; or the snapshot ``snapshot``."""
        if snapshot:
            return AzureSnapshotRef(connector=ref.connector, resource_group=ref.resource_group, name=snapshot)
        return AzureDiskRef(connector=ref.connector, resource_group=ref.resource_group,
                            name=name or prepared_name(ref.name))  # fmt: skip

    def prepare_outputs(self, output: AzureDiskRef) -> dict[str, Any]:
        if isinstance(output, AzureSnapshotRef):
            return {"output_snapshot_name": output.name}
        return {"output_disk_name": output.name}

    def prepare_source(self, spec: PrepareSpec, connectors: Connectors) -> tuple[Any, str]:
        """The Azure CE's source (a copy of the disk is made there) and the output's name."""
        from imageport.engine.azure import AzureSource  # the Azure SDK only when used

        disk = spec.disk
        source = AzureSource(disk.resource_group, disk.name, self.snapshot, spec.output_disk_name,
                             spec.output_snapshot_name, spec.overwrite)  # fmt: skip
        return source, spec.output_snapshot_name or self.prepared(disk, spec.output_disk_name).name


    def finalize_source(self, ref: AzureDiskRef, connectors: Connectors) -> Any:
        """The managed disk itself, booted as a helper VM's OS disk."""
        from imageport.engine.azure import AzureSource  # the Azure SDK only when used

        return AzureSource(ref.resource_group, ref.name)

    def diagnostics_source(self, ref: AzureDiskRef, connectors: Connectors) -> Any:
        """An Azure CE with a scratch copy of the disk or snapshot (deleted with the CE)."""
        from imageport.engine.azure import AzureSource  # the Azure SDK only when used

        return AzureSource(ref.resource_group, ref.name, self.snapshot)


class AzureSnapshotAdapter(AzureDiskAdapter):
    kind = "azure-snapshot"
    ref_type = AzureSnapshotRef
    schemes = ("azure-snapshot",)
    shape = "azure-snapshot://CONNECTOR/RESOURCE_GROUP/NAME"
    title = "an Azure snapshot"
    target_of = frozenset({Stage.PREPARE})  # a prepare may keep its output as a snapshot; uploads make disks
    snapshot = True
    streams_upload = False
    finalizes = False
    finalize_refusal = ("a snapshot does not boot: finalize the prepared disk before keeping it as a snapshot "
                        "(leave prepare.output_snapshot_name unset), or boot a disk made from it once")  # fmt: skip
    finalize_source = DiskAdapter.finalize_source  # refuses, with the sentence above

    def write_image(self, spec: UploadSpec, source: Opened, connectors: Connectors, *, progress: Any,
                    run_id: str, checkpoint_dir: Any) -> StageResult:  # fmt: skip
        return DiskAdapter.write_image(self, spec, source, connectors, progress=progress, run_id=run_id,
                                       checkpoint_dir=checkpoint_dir)  # fmt: skip


def _azure_backend(config: Any) -> CeBackend:
    from imageport.engine.azure import AzureBackend  # the Azure SDK only when used

    return AzureBackend(config.build())


AZURE_CE = CeHost("azure", _azure_backend)
