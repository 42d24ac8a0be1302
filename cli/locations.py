"""Locations typed on the command line: parsed into disk references, opened where they live."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from imageport import names
from imageport.adapters.registry import adapter_for, adapter_for_scheme
from imageport.disks.io import FileSystem
from imageport.disks.local_files import LOCAL
from imageport.models import DiskFormat


def managed_disk_target(target: str, field: str = "TARGET") -> tuple[str, str, str]:
    """``azure-disk://`` or ``azure-snapshot://CONNECTOR/RESOURCE_GROUP/NAME`` as its three parts."""
    kind = "azure-snapshot" if target.startswith("azure-snapshot://") else "azure-disk"
    ref = adapter_for(kind).parse(target, field)
    return ref.connector, ref.resource_group, ref.name


def parse_location(text: str, field: str = "location") -> Any:
    """A location typed on the command line, as a disk reference; a plain local path stays a string.

    The scheme picks the kind's adapter (``imageport.adapters.registry``), which parses exactly what
    it formats (what results and artifacts print); paths inside a connector follow
    ``imageport.names.store_path`` (no ``..``, nothing absolute, no NUL...). A refusal names ``field``
    (the argument) and the expected shape, as an ``InputError``.
    """
    adapter = adapter_for_scheme(text)
    if adapter is None:
        return names.check(field, text, names.no_nul)
    return adapter.parse(text, field)


@contextlib.contextmanager
def located(text: str) -> Iterator[tuple[FileSystem, str]]:
    """Where an image is: a local path, a page blob by SAS, or any disk location its kind's adapter reads
    (``smb://``, ``local://``, ``datastore://``; ``azure-disk://`` and ``azure-snapshot://`` through a read
    grant for the command, then revoked)."""
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


def export_container(text: str, chosen: DiskFormat | None) -> DiskFormat:
    """What a VM export writes at ``text``: ``chosen`` (``--to``), else what an export stage would decide there
    (``adapters.registry.disk_format_for``: a share connector's ``disk_format``; VHDX elsewhere)."""
    if chosen is not None:
        return chosen
    from imageport.adapters.registry import disk_format_for
    from imageport.models import ExportOptions

    ref = parse_location(text, "OUTPUT")
    if isinstance(ref, str):  # a plain local path: no connector to ask
        decided = disk_format_for(ExportOptions(), None, None)
    else:
        from blocks.resolve import CONNECTORS  # Prefect only when a connector is named

        decided = disk_format_for(ExportOptions(), ref, CONNECTORS)
    assert decided.disk_format is not None
    return decided.disk_format.writes


def connector_for(text: str, name: str, kind: str) -> Any:
    from blocks.resolve import connector_adapter  # Prefect only when a connector is named

    return connector_adapter(name, kind, text)
