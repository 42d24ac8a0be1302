"""Disk references: a discriminated union on ``kind``, and the written-reference variants."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)

from imageport.forms import KindForm
from imageport.models.fields import AzureName, AzureResourceGroup, ConnectorName, RelativePath
from imageport.models.vocabulary import DiskFormat, _Model, _titled

# --- disk references ---------------------------------------------------------

# What an image file must be when read (refused when its content says otherwise); see disks/detect.py.
# Aliases are evaluated at import, so they spell unions as Optional/Union: the agent runs on 3.9 too.
InputFormat = Annotated[
    Optional[DiskFormat],  # noqa: UP045
    Field(
        description="Format the image must be when read (default: detected; a different content is refused). "
        "'raw' also reads a file whose damaged signatures would otherwise be refused."
    ),
]


class VsphereDiskRef(_Model):
    """A virtual disk of a vSphere VM."""

    model_config = _titled("vSphere VM disk")

    kind: Literal["vsphere"] = "vsphere"
    connector: ConnectorName
    vm: str = Field(min_length=1, description="VM name, inventory path (DC/vm/folder/name) or MoRef (vm-123).")
    disk: str | None = Field(
        default=None,
        description="Disk label ('Hard disk 1') or datastore path ('[DS] dir/disk.vmdk'); default: the first disk.",
    )
    snapshot: str | None = Field(
        default=None, description="Read this existing snapshot instead of taking one for the run."
    )


class XenServerDiskRef(_Model):
    """A virtual disk (VBD/VDI) of a XenServer VM."""

    model_config = _titled("XenServer VM disk")

    kind: Literal["xenserver"] = "xenserver"
    connector: ConnectorName
    vm: str = Field(min_length=1, description="VM name label (unique in the pool) or uuid.")
    disk: str | None = Field(
        default=None, description="The disk's userdevice ('0') or device ('xvda'); default: the first disk."
    )
    snapshot: str | None = Field(
        default=None, description="Read this existing snapshot (name label or uuid) instead of taking one for the run."
    )


class AhvDiskRef(_Model):
    """A virtual disk of a Nutanix AHV VM (Prism Central)."""

    model_config = _titled("Nutanix AHV VM disk")

    kind: Literal["ahv"] = "ahv"
    connector: ConnectorName
    vm: str = Field(min_length=1, description="VM name (unique in Prism Central) or extId (UUID).")
    disk: str | None = Field(
        default=None, description="Disk by bus type and index ('scsi.0', 'sata.1') or diskExtId; default: the first."
    )


class DatastoreFileRef(_Model):
    """A disk file on a vSphere datastore, read over HTTPS; as an upload target, a new disk ESXi runs.

    Written (an upload target) ``path`` is the ``.vmdk`` descriptor of a flat disk (``NAME.vmdk`` +
    ``NAME-flat.vmdk``), and the upload may also put a VM around it (``create_vm``) or attach it to an
    existing VM (``attach_to_vm``); both are upload options of a written reference only.
    """

    model_config = _titled("vSphere datastore file")

    kind: Literal["datastore"] = "datastore"
    connector: ConnectorName
    datastore: str = Field(min_length=1, description="Datastore name, e.g. 'LocalDS_0'.")
    path: RelativePath = Field(description="Path on the datastore, e.g. 'gold/gold.vmdk'.")
    create_vm: str | None = Field(
        default=None, min_length=1, max_length=80,
        description="Upload target only: also create a powered-off VM of this name with the disk as its first disk.",
    )  # fmt: skip
    attach_to_vm: str | None = Field(
        default=None, min_length=1,
        description="Upload target only: attach the disk to this existing VM (name, inventory path or MoRef).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _one_vm_choice(self) -> DatastoreFileRef:
        if self.create_vm and self.attach_to_vm:
            raise ValueError("give create_vm or attach_to_vm, not both")
        return self

    @property
    def datastore_path(self) -> str:
        """``[datastore] path``, as vSphere names the file."""
        return f"[{self.datastore}] {self.path}"


class AzureDiskRef(_Model):
    """An Azure managed disk."""

    model_config = _titled("Azure managed disk")

    kind: Literal["azure-disk"] = "azure-disk"
    connector: ConnectorName
    resource_group: AzureResourceGroup
    name: AzureName


class AzureSnapshotRef(AzureDiskRef):
    """An Azure managed-disk snapshot."""

    model_config = _titled("Azure snapshot")

    kind: Literal["azure-snapshot"] = "azure-snapshot"  # type: ignore[assignment]


class ShareRef(_Model):
    """A file on an SMB share connector (also a PVS store)."""

    model_config = _titled("File on a share")

    kind: Literal["share"] = "share"
    connector: ConnectorName
    path: RelativePath = Field(description="Path inside the connector's base path, e.g. 'images/gold.vhdx'.")
    format: InputFormat = None


class LocalRef(_Model):
    """A file under a local-directory connector (the embedded default platform)."""

    model_config = _titled("Local file")

    kind: Literal["local"] = "local"
    connector: ConnectorName = "local"
    path: RelativePath = Field(description="Path inside the local connector's directory.")
    format: InputFormat = None


class BlobFolderRef(_Model):
    """A folder of an Azure blob container, read with the SAS its connector holds (an installers folder)."""

    model_config = _titled("Folder in a blob container")

    kind: Literal["blob"] = "blob"
    connector: ConnectorName
    path: RelativePath = Field(default="", description="Folder (blob-name prefix) in the container, e.g. 'citrix'.")


def _read(ref: Any) -> Any:
    """A reference a stage reads: the VM options of an upload target would be accepted there and ignored."""
    if getattr(ref, "create_vm", None) or getattr(ref, "attach_to_vm", None):
        raise ValueError("create_vm/attach_to_vm are options of an upload target; this reference is read: remove them")
    return ref


# Unions are validated by ``kind``; KindForm shows each as one form with a kind select (imageport/forms.py).
DiskRef = Annotated[
    Union[VsphereDiskRef, AhvDiskRef, AzureDiskRef, AzureSnapshotRef, ShareRef, LocalRef, DatastoreFileRef,  # noqa: UP007
          XenServerDiskRef],
    Field(discriminator="kind"),
    KindForm(),
    AfterValidator(_read),
]
# Where an image file can sit between stages (export output, upload input).
FileRef = Annotated[Union[ShareRef, LocalRef], Field(discriminator="kind"), KindForm()]  # noqa: UP007
# Where a prepare's installers folder can be: a share, local or datastore folder, a blob container's folder.
InstallersRef = Annotated[
    Union[ShareRef, LocalRef, DatastoreFileRef, BlobFolderRef],  # noqa: UP007
    Field(discriminator="kind"),
    KindForm(),
    AfterValidator(_read),
]
# Disks that live on a platform (export sources, upload targets, prepare inputs).
_PlatformDisk = Annotated[
    Union[VsphereDiskRef, AhvDiskRef, AzureDiskRef, AzureSnapshotRef, LocalRef, DatastoreFileRef, XenServerDiskRef],  # noqa: UP007
    Field(discriminator="kind"),
    KindForm(),
]
PlatformDiskRef = Annotated[_PlatformDisk, AfterValidator(_read)]


def _written(ref: Any) -> Any:
    """A reference a stage writes: ``format`` (what an input must be) would be accepted there and ignored."""
    if getattr(ref, "format", None) is not None:
        raise ValueError(
            "format states what an image read must be; this reference is written (its container comes from "
            "disk_format): remove format here"
        )
    if isinstance(ref, DatastoreFileRef) and not ref.path.lower().endswith(".vmdk"):
        raise ValueError("a disk written to a datastore is a VMDK: name its descriptor NAME.vmdk")
    return ref


# The same references where a stage writes them.
WrittenFileRef = Annotated[FileRef, AfterValidator(_written)]
WrittenStoreRef = Annotated[FileRef, AfterValidator(_written)]
WrittenPlatformDiskRef = Annotated[_PlatformDisk, AfterValidator(_written)]
WrittenLocalRef = Annotated[LocalRef, AfterValidator(_written)]
# Where a prepare can put its output by name: a local file, or a disk on a datastore.
WrittenPreparedRef = Annotated[
    Union[LocalRef, DatastoreFileRef],  # noqa: UP007
    Field(discriminator="kind"),
    KindForm(),
    AfterValidator(_written),
]
