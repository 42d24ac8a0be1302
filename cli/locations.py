"""Locations typed on the command line: parsed into disk references, opened where they live."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from imageport import names
from imageport.disks.io import FileSystem
from imageport.disks.local_files import LOCAL
from imageport.errors import InputError
from imageport.names import shown


def managed_disk_target(target: str, field: str = "TARGET") -> tuple[str, str, str]:
    """``azure-disk://`` or ``azure-snapshot://CONNECTOR/RESOURCE_GROUP/NAME`` as its three parts."""
    scheme, _, rest = target.partition("://")
    parts = rest.split("/")
    if len(parts) != 3 or not all(parts):
        last = "DISK" if scheme == "azure-disk" else "NAME"
        raise InputError(f"{field} {shown(target)}: use {scheme}://CONNECTOR/RESOURCE_GROUP/{last}")
    return parts[0], parts[1], parts[2]


def parse_location(text: str, field: str = "location") -> Any:
    """A location typed on the command line, as a disk reference; a plain local path stays a string.

    Paths inside a connector follow ``imageport.names.store_path`` (no ``..``, nothing absolute, no
    NUL...); a refusal names ``field`` (the argument) and the rule, as an ``InputError``.
    """
    from imageport.models import AzureDiskRef, AzureSnapshotRef, DatastoreFileRef, ShareRef

    where = f"{field} {names.shown(text)}"
    try:
        for scheme, model in (("azure-disk://", AzureDiskRef), ("azure-snapshot://", AzureSnapshotRef)):
            if text.startswith(scheme):
                connector, resource_group, name = managed_disk_target(text, field)
                return model(connector=connector, resource_group=resource_group, name=name)
        if text.startswith("smb://"):
            connector, _, path = text.removeprefix("smb://").partition("/")
            return ShareRef(connector=connector, path=path or ".")
        if text.startswith("datastore://"):
            connector, _, rest = text.removeprefix("datastore://").partition("/")
            datastore, _, path = rest.partition("/")
            if not datastore or not path:
                raise InputError(f"{where}: use datastore://CONNECTOR/DATASTORE/path/on/datastore")
            return DatastoreFileRef(connector=connector, datastore=datastore, path=path)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise InputError(f"{where}: {problems}") from None
    return names.check(field, text, names.no_nul)


@contextlib.contextmanager
def located(text: str) -> Iterator[tuple[FileSystem, str]]:
    """Where an image is: a local path, ``smb://CONNECTOR/path`` on a file-share connector, or
    ``azure-disk://CONNECTOR/RESOURCE_GROUP/DISK`` (read access granted for the command, then revoked)."""
    if text.startswith(("sas+https://", "sas+http://")):  # a page blob by SAS, e.g. a disk's read grant
        from imageport.storage.page_blob import PageBlobFileSystem

        yield PageBlobFileSystem(text.removeprefix("sas+")), "blob"
        return
    ref = parse_location(text)
    if isinstance(ref, str):
        yield LOCAL, ref  # no connector: Prefect is not even imported
        return
    from blocks.resolve import located as located_ref

    with located_ref(ref) as found:
        yield found


def connector_for(text: str, name: str, kind: str) -> Any:
    from blocks.resolve import connector_adapter  # Prefect only when a connector is named

    return connector_adapter(name, kind, text)
