"""The one table of platform adapters, and the lookups every caller uses (virt-v2v's select_input.ml).

Adding a platform adds one row to ``ADAPTERS`` (and, when its connector kind hosts compositing
engines, one to ``CE_HOSTS``); nothing else selects on a kind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TypeVar

from imageport.adapters.ahv import AHV_LEFTOVERS, AhvDiskAdapter
from imageport.adapters.azure import AZURE_CE, AzureDiskAdapter, AzureSnapshotAdapter
from imageport.adapters.blob import BlobFolderAdapter
from imageport.adapters.datastore import DatastoreAdapter
from imageport.adapters.local import LOCAL_CE, LocalAdapter
from imageport.adapters.protocol import CeHost, Connectors, DiskAdapter
from imageport.adapters.share import ShareAdapter
from imageport.adapters.vsphere import VSPHERE_CE, VsphereDiskAdapter
from imageport.adapters.xenserver import XENSERVER_LEFTOVERS, XenServerDiskAdapter
from imageport.disks.io import FileSystem
from imageport.engine.backend import CeBackend
from imageport.errors import InputError
from imageport.models import DEFAULT_DISK_FORMAT, ExportOptions, PublishOptions
from imageport.names import shown

Spec = TypeVar("Spec", bound=ExportOptions | PublishOptions)  # an export's or a publish's options or spec

ADAPTERS: list[tuple[str, DiskAdapter]] = [
    ("vsphere", VsphereDiskAdapter()),
    ("ahv", AhvDiskAdapter()),
    ("datastore", DatastoreAdapter()),
    ("azure-disk", AzureDiskAdapter()),
    ("azure-snapshot", AzureSnapshotAdapter()),
    ("share", ShareAdapter()),
    ("local", LocalAdapter()),
    ("xenserver", XenServerDiskAdapter()),
    ("blob", BlobFolderAdapter()),  # an installers folder, not a disk
]
CE_HOSTS: dict[str, CeHost] = {host.connector_kind: host for host in (LOCAL_CE, AZURE_CE, VSPHERE_CE,
                                                                               AHV_LEFTOVERS, XENSERVER_LEFTOVERS)}

_BY_KIND = dict(ADAPTERS)
_BY_SCHEME = {scheme: adapter for _, adapter in ADAPTERS for scheme in adapter.schemes}


def adapter_for(ref_or_kind: Any) -> DiskAdapter:
    """The adapter of a reference (by its ``kind``) or of a kind name."""
    kind = ref_or_kind if isinstance(ref_or_kind, str) else getattr(ref_or_kind, "kind", None)
    adapter = _BY_KIND.get(kind) if isinstance(kind, str) else None
    if adapter is None:
        raise InputError(f"unknown disk kind {shown(str(kind))}: use one of {', '.join(_BY_KIND)}")
    return adapter


def scheme_of(text: str) -> str | None:
    """The scheme of a location text (``smb`` of ``smb://...``), or None when it has none."""
    scheme, sep, _ = text.partition("://")
    return scheme if sep and scheme and scheme.replace("-", "").replace("+", "").isalnum() else None


def adapter_for_scheme(text: str) -> DiskAdapter | None:
    """The adapter whose scheme ``text`` starts with; None when it names no known scheme."""
    scheme = scheme_of(text)
    return _BY_SCHEME.get(scheme) if scheme else None


def parse_ref(text: str, field: str = "location") -> Any:
    """A location text as a reference; a text without a known scheme is an ``InputError`` naming ``field``."""
    adapter = adapter_for_scheme(text)
    if adapter is None:
        schemes = ", ".join(f"{s}://" for s in _BY_SCHEME)
        raise InputError(f"{field} {shown(text)}: not a disk location; use one of {schemes}")
    return adapter.parse(text, field)


def format_ref(ref: Any) -> str:
    """The canonical text of a reference (``parse_ref(format_ref(ref)) == ref``); describes it in reports."""
    return adapter_for(ref).format(ref)


@contextlib.contextmanager
def opened(ref: Any, connectors: Connectors) -> Iterator[tuple[FileSystem, str]]:
    """The file system and path of ``ref`` for reading, for as long as the block runs."""
    with adapter_for(ref).open_read(ref, connectors) as found:
        yield found


def disk_format_for(spec: Spec, ref: Any | None, connectors: Connectors | None) -> Spec:
    """``spec`` (an export's or a publish's) with its container decided, the one place it is: the stage's own
    ``disk_format`` when set, else the default of where it writes, ``ref`` (a share connector's ``disk_format``;
    VHDX elsewhere, and for ``None``: a plain local path the CLI was given). A decided spec comes back as it is."""
    if spec.disk_format is not None:
        return spec
    if ref is None or connectors is None:
        return spec.model_copy(update={"disk_format": DEFAULT_DISK_FORMAT})
    return spec.model_copy(update={"disk_format": adapter_for(ref).default_disk_format(ref, connectors)})


def hosts_ce(connector_kind: str) -> bool:
    return connector_kind in CE_HOSTS


def ce_host(connector_kind: str, name: str) -> CeHost:
    """How connector ``name`` (of ``connector_kind``) hosts CEs; refused when its kind cannot."""
    host = CE_HOSTS.get(connector_kind)
    if host is None:
        raise InputError(
            f"connector {name!r} is a {connector_kind} connector, which cannot host a compositing engine"
        )
    return host


def ce_backend(connector_kind: str, config: Any, name: str) -> CeBackend:
    """The ``CeBackend`` of a saved connector's config."""
    return ce_host(connector_kind, name).backend(config)
