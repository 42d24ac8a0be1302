"""Connector blocks: the saved, UI-editable configurations of every platform and share.

Each block *is* its core config model (fields, descriptions and validators are
defined once, in the core) plus Prefect's Block behaviour: persistence, the UI
form, ``SecretStr`` masking. ``build()``, inherited from the core model,
returns the core adapter, so flows and the CLI run the exact code the core
tests exercise.
"""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block

from imageport.platforms.ahv.session import AhvConfig
from imageport.platforms.azure.session import AzureConfig
from imageport.platforms.vsphere.session import VsphereConfig
from imageport.platforms.xenserver.session import XenServerConfig
from imageport.storage.blob_folder import BlobContainerConfig
from imageport.storage.local import LocalDirectoryConfig
from imageport.storage.smb import SmbShareConfig

_DOCS = "https://github.com/imageport/imageport/blob/main/docs/connectors.md"


def _example(cls_name: str) -> str:
    return (
        "```python\n"
        f"from blocks import {cls_name}\n\n"
        f'connector = {cls_name}.load("BLOCK_NAME")\n'
        "print(connector.build().check())  # what a real login proved\n"
        "```"
    )


class FileShareConnector(Block, SmbShareConfig):
    """An SMB file share: export and publish output, PVS stores (Citrix's Windows File Share connector)."""

    _code_example = _example("FileShareConnector")
    _block_type_name = "Imageport File Share Connector"
    _block_type_slug = "imageport-fileshare"
    _description = "SMB share for exported images and PVS stores, with its credentials."
    _documentation_url = _DOCS
    kind: ClassVar[str] = "fileshare"


class VsphereConnector(Block, VsphereConfig):
    """A vCenter: source of master images, import target, compositing-engine host."""

    _code_example = _example("VsphereConnector")
    _block_type_name = "Imageport vSphere Connector"
    _block_type_slug = "imageport-vsphere"
    _description = "vCenter endpoint, credentials, TLS trust and compositing-engine placement."
    _documentation_url = _DOCS
    kind: ClassVar[str] = "vsphere"


class AhvConnector(Block, AhvConfig):
    """A Nutanix Prism Central (v4 APIs): source of master images on AHV."""

    _code_example = _example("AhvConnector")
    _block_type_name = "Imageport Nutanix AHV Connector"
    _block_type_slug = "imageport-ahv"
    _description = "Prism Central endpoint, credentials and TLS trust."
    _documentation_url = _DOCS
    kind: ClassVar[str] = "ahv"


class AzureConnector(Block, AzureConfig):
    """An Azure subscription and resource group: MCS target, source, compositing-engine host."""

    _code_example = _example("AzureConnector")
    _block_type_name = "Imageport Azure Connector"
    _block_type_slug = "imageport-azure"
    _description = "Azure identity, subscription, resource group, region and compositing-engine settings."
    _documentation_url = _DOCS
    kind: ClassVar[str] = "azure"


class LocalConnector(Block, LocalDirectoryConfig):
    """A local directory used as platform and share: the embedded default."""

    _code_example = _example("LocalConnector")
    _block_type_name = "Imageport Local Connector"
    _block_type_slug = "imageport-local"
    _description = "A directory on the worker that acts as platform and share (demo, tests, single host)."
    _documentation_url = _DOCS
    kind: ClassVar[str] = "local"


class XenServerConnector(Block, XenServerConfig):
    """A XenServer 8 pool: source of master images (VM disks exported through snapshots)."""

    _code_example = _example("XenServerConnector")
    _block_type_name = "Imageport XenServer Connector"
    _block_type_slug = "imageport-xenserver"
    _description = "XenServer pool address (master or member), credentials and TLS trust (CA or SHA-256 pin)."
    _documentation_url = _DOCS
    kind: ClassVar[str] = "xenserver"


class BlobContainerConnector(Block, BlobContainerConfig):
    """An Azure blob container and a read+list SAS: where a prepare's Citrix installers may come from."""

    _code_example = _example("BlobContainerConnector")
    _block_type_name = "Imageport Blob Container Connector"
    _block_type_slug = "imageport-blob"
    _description = "Azure blob container URL and a SAS token that may read and list it (installers folders)."
    _documentation_url = _DOCS
    kind: ClassVar[str] = "blob"


CONNECTOR_KINDS: dict[str, type[Block]] = {
    cls.kind: cls
    for cls in (FileShareConnector, VsphereConnector, AhvConnector, AzureConnector, LocalConnector,
                XenServerConnector, BlobContainerConnector)
}
