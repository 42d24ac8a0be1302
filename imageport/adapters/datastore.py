"""Disk files on a vSphere datastore (flat or sparse VMDKs...): read over HTTPS; vSphere as a target.

As a target (issue 15, part 3): an upload writes a flat VMDK ESXi runs, read back and checked against the
source's content hash (``platforms/vsphere/upload.py``), and may put a VM around it or attach it to one; a
prepare runs on a vSphere CE of the disk's connector (``engine/vsphere.py``) and keeps ``NAME-prepared.vmdk``
next to the input (or ``output_disk_name``.vmdk, or the datastore file ``output`` names); a VM asked of
the prepared copy (``create_vm``/``attach_to_vm`` on ``output``) is made once it is in place.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterator
from typing import Any

from imageport.adapters.files import FileAdapter
from imageport.adapters.locations import SEGMENT, Location, escape, query_text
from imageport.adapters.protocol import Connectors, Opened
from imageport.disks.detect import open_disk
from imageport.disks.io import FileSystem
from imageport.errors import InputError
from imageport.guest.installers import InstallerFolder
from imageport.models import DatastoreFileRef, LocalRef, PrepareSpec, Stage, TargetPlatform, UploadSpec
from imageport.names import prepared_name
from imageport.results import CreatedResource, StageResult, from_datastore_upload, placed_vm

VM_OPTIONS = ("create_vm", "attach_to_vm")  # a written disk's: the VM it gets


class DatastoreAdapter(FileAdapter):
    kind = "datastore"
    ref_type = DatastoreFileRef
    connector_kind = "vsphere"
    schemes = ("datastore",)
    shape = "datastore://CONNECTOR/DATASTORE/path/on/datastore[?create_vm=VM|attach_to_vm=VM]"
    title = "a vSphere datastore file"
    source_of = frozenset({Stage.EXPORT, Stage.PREPARE, Stage.PUBLISH})
    target_of = frozenset({Stage.UPLOAD, Stage.PREPARE})
    target_platform = TargetPlatform.VSPHERE
    streams_upload = True
    finalize_refusal = (
        "imageport does not boot helper VMs on vSphere yet: power on a VM with the prepared disk once (no NIC "
        "needed) and shut it down after firstboot.log ends with 'all actions done' (or set finalize.enabled off)"
    )
    stages_installers = True  # each on a read-only disk of its own in the CE's work folder (engine/vsphere.py)

    def parse(self, text: str, field: str = "location") -> Any:
        loc = Location(text, self.schemes[0], field, self.shape)
        options = loc.options(VM_OPTIONS)
        datastore, path = loc.segments(2)
        return loc.model(DatastoreFileRef, connector=loc.connector, datastore=datastore, path=path, **options)

    def format(self, ref: DatastoreFileRef) -> str:
        query = query_text(create_vm=ref.create_vm, attach_to_vm=ref.attach_to_vm)
        return (f"datastore://{escape(ref.connector, SEGMENT)}/{escape(ref.datastore, SEGMENT)}/{escape(ref.path)}"
                f"{query}")  # fmt: skip

    def plain(self, ref: DatastoreFileRef) -> DatastoreFileRef:
        """The disk without the VM it was to get: what an upload of a port writes and later stages read."""
        return ref.model_copy(update=dict.fromkeys(VM_OPTIONS))

    @contextlib.contextmanager
    def open_read(self, ref: DatastoreFileRef, connectors: Connectors) -> Iterator[tuple[FileSystem, str]]:
        with connectors.build(ref.connector, "vsphere", self.describe(ref)) as session:
            fs = session.datastore_files(ref.datastore)
            try:
                yield fs, ref.path
            finally:
                fs.close()

    @contextlib.contextmanager
    def installer_folder(self, ref: DatastoreFileRef, connectors: Connectors) -> Iterator[InstallerFolder]:
        """A datastore folder of installers: listed by the datastore browser, read over ``/folder``."""
        from imageport.platforms.vsphere.folders import list_datastore_folder  # pyVmomi only when used

        with connectors.build(ref.connector, "vsphere", self.describe(ref)) as session:
            names = list_datastore_folder(session, ref.datastore, ref.path)
            fs = session.datastore_files(ref.datastore)
            try:
                yield InstallerFolder(fs, ref.path.strip("/"), names)
            finally:
                fs.close()

    # --- vSphere as a target ----------------------------------------------------------------------------

    def write_image(self, spec: UploadSpec, source: Opened, connectors: Connectors, *, progress: Any,
                    run_id: str, checkpoint_dir: Any) -> StageResult:  # fmt: skip
        """A verified flat VMDK on the datastore, a VM if asked."""
        from imageport.platforms.vsphere.upload import upload_to_datastore  # pyVmomi only when used

        target = spec.target
        fs, path = source
        with connectors.build(target.connector, "vsphere", self.describe(target)) as session:
            uploaded = upload_to_datastore(session, path, fs, target.datastore, target.path,
                                           overwrite=spec.overwrite, create_vm=target.create_vm,
                                           attach_to_vm=target.attach_to_vm, source_format=spec.source.format,
                                           progress=progress, tags=spec.tags)  # fmt: skip
        return from_datastore_upload(uploaded)

    def prepared(self, ref: DatastoreFileRef, name: str | None = None, snapshot: str | None = None) -> Any:
        """``NAME-prepared.vmdk`` (or ``name``.vmdk) beside the disk, to get the VM the target asks for."""
        folder, file = posixpath.split(ref.path)
        stem = name or prepared_name(posixpath.splitext(file)[0])
        return ref.model_copy(update={"path": posixpath.join(folder, f"{stem}.vmdk")})

    def prepare_outputs(self, output: DatastoreFileRef) -> dict[str, Any]:
        return {"output": output}

    def prepare_source(self, spec: PrepareSpec, connectors: Connectors) -> tuple[Any, str]:
        """The vSphere CE's source (the disk is copied into the CE's work folder) and its output's path."""
        from imageport.engine.vsphere import VsphereSource  # pyVmomi only when used

        output = prepared_output(spec)
        return VsphereSource(spec.disk.datastore_path, output.datastore_path, spec.overwrite), output.datastore_path

    def diagnostics_source(self, ref: DatastoreFileRef, connectors: Connectors) -> Any:
        """A vSphere CE of the disk's connector with a scratch copy in its work folder (deleted with it)."""
        from imageport.engine.vsphere import VsphereSource  # pyVmomi only when used

        return VsphereSource(ref.datastore_path)

    def finish_prepare(self, spec: PrepareSpec, connectors: Connectors) -> list[CreatedResource]:
        """The VM the prepared copy was asked to get, made (or the disk attached) once the copy is in place."""
        output = prepared_output(spec)
        if not (output.create_vm or output.attach_to_vm):
            return []
        from imageport.platforms.vsphere.upload import firmware_of, place_vm  # pyVmomi only when used

        with connectors.build(output.connector, "vsphere", self.describe(output)) as session:
            files = session.datastore_files(output.datastore)
            try:
                firmware = firmware_of(output.path, files)
                with open_disk(output.path, fs=files) as reader:
                    size = reader.virtual_size
            finally:
                files.close()
            vm = place_vm(session, output.datastore_path, size, create_vm=output.create_vm,
                          attach_to_vm=output.attach_to_vm, firmware=firmware, tags=spec.tags)  # fmt: skip
        return placed_vm(vm)


def prepared_output(spec: PrepareSpec) -> DatastoreFileRef:
    """Where the prepared copy of a datastore disk goes: ``output``, ``output_disk_name``.vmdk or
    ``NAME-prepared.vmdk``, beside the input; on the CE's vCenter (the disk's connector)."""
    disk = spec.disk
    assert isinstance(disk, DatastoreFileRef)
    if spec.output_snapshot_name:
        raise InputError("output_snapshot_name: an Azure snapshot is the output of an Azure disk's prepare")
    if isinstance(spec.output, LocalRef):
        raise InputError("output: a vSphere disk is prepared onto a datastore; name a datastore output")
    if spec.output is None:
        return DatastoreAdapter().prepared(disk, spec.output_disk_name)
    if spec.output.connector != disk.connector:
        raise InputError(f"output: the prepared copy stays on the CE's vCenter (connector {disk.connector!r})")
    return spec.output
