"""KIND-SPECIFIC CHECKS: one function per reference kind for what only the platform can say.

These belong to the platform adapters (issue 15 part 1: one adapter per kind, one registry table); until
they exist, each kind's piece is one clearly marked function here, so each moves into its adapter whole:

- ``ROLES``: which stages a kind can be the source or target of (the adapters' table);
- ``source_facts_<kind>``: the firmware, partition style and size of a source, without moving data;
- ``output_exists_<kind>``: whether an output of that name exists already;
- ``probe_folder_<kind>``: a write+delete probe where a file output will be written.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from blocks.resolve import connector_adapter, describe_ref, located
from imageport.disks.detect import open_disk
from imageport.disks.partitions import partition_style
from imageport.models import Stage
from imageport.preflight.limits import EXISTS, SourceFacts
from imageport.storage.probe import probe_directory, probe_share

SOURCE, TARGET = "source", "target"
# kind -> role -> the stages it can play that role in (what tasks/*.py accept today).
ROLES: dict[str, dict[str, set[Stage]]] = {
    "vsphere": {SOURCE: {Stage.EXPORT}, TARGET: set()},
    "datastore": {SOURCE: {Stage.PUBLISH}, TARGET: set()},
    "azure-disk": {SOURCE: {Stage.EXPORT, Stage.PREPARE, Stage.PUBLISH}, TARGET: {Stage.UPLOAD, Stage.PREPARE}},
    "azure-snapshot": {SOURCE: {Stage.EXPORT, Stage.PREPARE, Stage.PUBLISH}, TARGET: {Stage.PREPARE}},
    "share": {SOURCE: {Stage.UPLOAD, Stage.PUBLISH}, TARGET: {Stage.EXPORT, Stage.PUBLISH}},
    "local": {SOURCE: {Stage.EXPORT, Stage.UPLOAD, Stage.PREPARE, Stage.PUBLISH},
              TARGET: {Stage.EXPORT, Stage.UPLOAD, Stage.PREPARE, Stage.PUBLISH}},
}  # fmt: skip
CONNECTOR_KINDS = {"vsphere": "vsphere", "datastore": "vsphere", "azure-disk": "azure", "azure-snapshot": "azure",
                   "share": "fileshare", "local": "local"}  # fmt: skip


def allowed(kind: str, role: str, stage: Stage) -> bool:
    return stage in ROLES.get(kind, {}).get(role, set())


def can_be(role: str, stage: Stage) -> list[str]:
    """The kinds that can play ``role`` in ``stage``, for the message."""
    return [kind for kind in ROLES if allowed(kind, role, stage)]


def source_facts(ref: Any) -> SourceFacts | None:
    facts = {"vsphere": source_facts_vsphere, "azure-disk": source_facts_azure, "azure-snapshot": source_facts_azure,
             "share": source_facts_file, "local": source_facts_file}.get(ref.kind)  # fmt: skip
    return facts(ref) if facts else None


# --- vSphere ----------------------------------------------------------------------------------------


def source_facts_vsphere(ref: Any) -> SourceFacts:
    """The VM's ``config.firmware`` (bios / efi) and the disk's capacity, read from the inventory."""
    from imageport.platforms.vsphere.inventory import describe_vm, find_vm, select_disk

    with connector_adapter(ref.connector, "vsphere", describe_ref(ref)) as session:
        si = session.si or session.connect()
        info = describe_vm(si, find_vm(si, ref.vm))
    disk = select_disk(info, ref.disk)
    firmware = {"efi": "uefi", "bios": "bios"}.get(info.firmware or "")
    return SourceFacts(f"the source VM {ref.vm!r}", firmware, None, disk.capacity_bytes)


# --- Azure disk and snapshot --------------------------------------------------------------------------


def _azure_resource(ref: Any) -> Any:
    from imageport.platforms.azure.disks import get_or_none

    compute = connector_adapter(ref.connector, "azure", describe_ref(ref)).compute()
    operations = compute.snapshots if ref.kind == "azure-snapshot" else compute.disks
    return get_or_none(operations, ref.kind, ref.resource_group, ref.name)


def source_facts_azure(ref: Any) -> SourceFacts:
    """The disk's recorded Hyper-V generation (V1 boots BIOS, V2 UEFI) and size; missing is an error."""
    from imageport.errors import PlatformNotFound

    found = _azure_resource(ref)
    if found is None:
        raise PlatformNotFound(f"{describe_ref(ref)} does not exist")
    generation = getattr(found.properties, "hyper_v_generation", None)
    generation = str(getattr(generation, "value", generation) or "")  # an enum from the SDK, or a string
    firmware = {"V1": "bios", "V2": "uefi"}.get(generation)
    return SourceFacts(f"the source {ref.kind} {ref.name!r}", firmware, None, found.properties.disk_size_bytes)


def output_exists_azure(ref: Any) -> str | None:
    """The state of the disk or snapshot of that name, or None when there is none."""
    from imageport.platforms.azure.disks import disk_state

    found = _azure_resource(ref)
    if found is None:
        return None
    return disk_state(found) if ref.kind == "azure-disk" else EXISTS


# --- files: a share or the local platform -------------------------------------------------------------


def source_facts_file(ref: Any) -> SourceFacts:
    """The partition style from the image's first sectors (any container, any store) and its virtual size."""
    with located(ref) as (fs, path), open_disk(path, ref.format, fs=fs) as reader:
        style = partition_style(reader)
        return SourceFacts(f"the source disk {describe_ref(ref)}", style.firmware, style, reader.virtual_size)


def output_exists_file(ref: Any) -> str | None:
    with located(ref) as (fs, path):
        return EXISTS if fs.isfile(path) else None


def probe_folder_share(ref: Any, folder: str) -> str:
    """Write and delete a probe in ``folder`` of the share connector (the folder must exist)."""
    share = connector_adapter(ref.connector, "fileshare", describe_ref(ref))
    with share:
        return probe_share(share, folder)


def probe_folder_local(ref: Any, folder: str, makes_folders: bool) -> str:
    """The same in the local connector's ``folder``; where the stage makes its folders, in the nearest one
    that exists."""
    directory = connector_adapter(ref.connector, "local", describe_ref(ref))
    path = Path(directory.path(folder))
    while makes_folders and not path.exists() and path != directory.root:
        path = path.parent
    return probe_directory(path, f"local://{ref.connector}/{folder}".rstrip("/"))


def output_exists(ref: Any) -> str | None:
    exists = {"azure-disk": output_exists_azure, "azure-snapshot": output_exists_azure,
              "share": output_exists_file, "local": output_exists_file}.get(ref.kind)  # fmt: skip
    return exists(ref) if exists else None


def probe_folder(ref: Any, folder: str | None = None, makes_folders: bool = False) -> str | None:
    """Probe the folder of a file output (default: the one it is written in); None for other kinds."""
    folder = posixpath.dirname(ref.path) if folder is None else folder
    if ref.kind == "share":
        return probe_folder_share(ref, folder)
    if ref.kind == "local":
        return probe_folder_local(ref, folder, makes_folders)
    return None
