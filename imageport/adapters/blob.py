"""Folders of an Azure blob container, read with the SAS of a blob connector: an installers source.

Not a disk kind: no stage reads or writes an image here; a prepare lists the folder, checks the installers
it stages (read over the SDK with the SAS) and hands an Azure CE each blob's URL with the SAS, which it
fetches itself; other CEs receive a copy through their delivery (``engine.installer_delivery``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from imageport.adapters.locations import Location, escape
from imageport.adapters.protocol import Connectors, DiskAdapter
from imageport.guest.installers import InstallerFolder
from imageport.models import BlobFolderRef
from imageport.storage.blob_folder import BlobFolderFileSystem


class BlobFolderAdapter(DiskAdapter):
    kind = "blob"
    ref_type = BlobFolderRef
    connector_kind = "blob"
    schemes = ("blob",)
    shape = "blob://CONNECTOR/folder"
    title = "a folder in a blob container"

    def parse(self, text: str, field: str = "location") -> Any:
        loc = Location(text, self.schemes[0], field, self.shape)
        loc.options(())
        return loc.model(BlobFolderRef, connector=loc.connector, path=loc.decode(loc.rest))

    def format(self, ref: BlobFolderRef) -> str:
        return f"blob://{escape(ref.connector)}/{escape(ref.path)}"

    def name(self, ref: BlobFolderRef) -> str:
        return ref.path

    @contextlib.contextmanager
    def installer_folder(self, ref: BlobFolderRef, connectors: Connectors) -> Iterator[InstallerFolder]:
        """The folder's blobs (listed with the SAS), readable through the SDK and fetchable by their SAS URL."""
        with connectors.build(ref.connector, "blob", self.describe(ref)) as container:
            folder = ref.path.strip("/")
            yield InstallerFolder(BlobFolderFileSystem(container), folder, container.names(folder), container.url)
