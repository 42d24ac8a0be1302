"""From a disk reference to something the core can open: the one place refs meet connectors.

Flows, tasks and the CLI all name images by reference (``ShareRef``,
``LocalRef``, ``AzureDiskRef``...); this module loads the named connector,
checks it is of the right kind, and yields the file system and path the
disk engine opens, or the store folder publish writes into.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from blocks.registry import find_connector
from imageport.disks.io import FileSystem
from imageport.disks.local_files import LOCAL
from imageport.errors import InputError
from imageport.models import AzureDiskRef, AzureSnapshotRef, DatastoreFileRef, LocalRef, ShareRef
from imageport.platforms.pvs.store import LocalStoreFolder, SmbStoreFolder, StoreFolder
from imageport.storage.smb_files import SmbFileSystem


def connector_adapter(name: str, kind: str, where: str) -> Any:
    """The adapter built from connector ``name``, which must be a ``kind`` connector."""
    found, block = find_connector(name)
    if found != kind:
        raise InputError(f"{where}: connector {name!r} is a {found} connector; this needs a {kind} one")
    return block.build()


def describe_ref(ref: Any) -> str:
    """``kind://connector/path-or-name`` of a disk reference, for messages and reports (never a secret)."""
    name = getattr(ref, "path", None) or getattr(ref, "name", None) or getattr(ref, "vm", "")
    return f"{ref.kind}://{ref.connector}/{name}"


@contextlib.contextmanager
def located(ref: Any) -> Iterator[tuple[FileSystem, str]]:
    """The file system and path of an image named by ``ref``, for as long as the block runs.

    A managed disk is granted read access for the block and revoked afterwards.
    """
    where = describe_ref(ref)
    if isinstance(ref, LocalRef):
        yield LOCAL, str(connector_adapter(ref.connector, "local", where).path(ref.path))
    elif isinstance(ref, ShareRef):
        fs = SmbFileSystem(connector_adapter(ref.connector, "fileshare", where))
        try:
            yield fs, ref.path
        finally:
            fs.close()
    elif isinstance(ref, AzureDiskRef):  # a managed disk or (AzureSnapshotRef) a snapshot
        from imageport.platforms.azure.disks import read_managed_disk

        session = connector_adapter(ref.connector, "azure", where)
        snapshot = isinstance(ref, AzureSnapshotRef)
        with read_managed_disk(session, ref.resource_group, ref.name, snapshot=snapshot) as fs:
            yield fs, ref.name
    elif isinstance(ref, DatastoreFileRef):
        with connector_adapter(ref.connector, "vsphere", where) as session:
            fs = session.datastore_files(ref.datastore)
            try:
                yield fs, ref.path
            finally:
                fs.close()
    else:
        raise InputError(f"{where}: a {ref.kind} disk is read by exporting it first")


@contextlib.contextmanager
def store_folder(ref: ShareRef | LocalRef) -> Iterator[StoreFolder]:
    """The PVS store folder ``ref`` names (a folder on a file-share connector, or a local one)."""
    where = describe_ref(ref)
    folder: StoreFolder
    if isinstance(ref, ShareRef):
        folder = SmbStoreFolder(connector_adapter(ref.connector, "fileshare", where), ref.path)
    else:
        folder = LocalStoreFolder(Path(connector_adapter(ref.connector, "local", where).path(ref.path)))
    try:
        yield folder
    finally:
        folder.close()
