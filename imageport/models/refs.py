"""Disk references: a discriminated union on ``kind``, and the written-reference variants."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    AfterValidator,
    Field,
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


class DatastoreFileRef(_Model):
    """An image file on a vSphere datastore (e.g. a flat or sparse VMDK), read over HTTPS."""

    model_config = _titled("vSphere datastore file")

    kind: Literal["datastore"] = "datastore"
    connector: ConnectorName
    datastore: str = Field(min_length=1, description="Datastore name, e.g. 'LocalDS_0'.")
    path: RelativePath = Field(description="Path on the datastore, e.g. 'gold/gold.vmdk'.")


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


# Unions are validated by ``kind``; KindForm shows each as one form with a kind select (imageport/forms.py).
DiskRef = Annotated[
    Union[VsphereDiskRef, AzureDiskRef, AzureSnapshotRef, ShareRef, LocalRef],  # noqa: UP007
    Field(discriminator="kind"),
    KindForm(),
]
# Where an image file can sit between stages (export output, upload input).
FileRef = Annotated[Union[ShareRef, LocalRef], Field(discriminator="kind"), KindForm()]  # noqa: UP007
# Disks that live on a platform (export sources, upload targets, prepare inputs).
PlatformDiskRef = Annotated[
    Union[VsphereDiskRef, AzureDiskRef, AzureSnapshotRef, LocalRef],  # noqa: UP007
    Field(discriminator="kind"),
    KindForm(),
]


def _written(ref: Any) -> Any:
    """A reference a stage writes: ``format`` (what an input must be) would be accepted there and ignored."""
    if getattr(ref, "format", None) is not None:
        raise ValueError(
            "format states what an image read must be; this reference is written (its container comes from "
            "disk_format): remove format here"
        )
    return ref


# The same references where a stage writes them.
WrittenFileRef = Annotated[FileRef, AfterValidator(_written)]
WrittenStoreRef = Annotated[FileRef, AfterValidator(_written)]
WrittenPlatformDiskRef = Annotated[PlatformDiskRef, AfterValidator(_written)]
WrittenLocalRef = Annotated[LocalRef, AfterValidator(_written)]
