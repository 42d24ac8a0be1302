"""From a disk reference to something the core can open: saved connectors for the platform adapters.

Flows, tasks and the CLI name images by reference (``ShareRef``, ``LocalRef``, ``AzureDiskRef``...);
what a kind means lives in its adapter (``imageport/adapters/``), chosen by the registry. This module
is the Prefect-layer implementation of the adapters' ``Connectors`` lookup (a saved connector block,
checked to be of the right kind, built into its core adapter) plus thin helpers over the registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from blocks.registry import find_connector
from imageport.adapters.registry import adapter_for, format_ref
from imageport.disks.base import FileSystem
from imageport.errors import InputError
from imageport.platforms.pvs.store import StoreFolder


def connector_adapter(name: str, kind: str, where: str) -> Any:
    """The adapter built from connector ``name``, which must be a ``kind`` connector."""
    found, block = find_connector(name)
    if found != kind:
        raise InputError(f"{where}: connector {name!r} is a {found} connector; this needs a {kind} one")
    return block.build()


class BlockConnectors:
    """``imageport.adapters.protocol.Connectors`` over the saved connector blocks."""

    def build(self, name: str, connector_kind: str, where: str) -> Any:
        return connector_adapter(name, connector_kind, where)


CONNECTORS = BlockConnectors()


def describe_ref(ref: Any) -> str:
    """The canonical location text of a disk reference (what the CLI parses back); never a secret."""
    return format_ref(ref)


@contextlib.contextmanager
def located(ref: Any) -> Iterator[tuple[FileSystem, str]]:
    """The file system and path of an image named by ``ref``, for reading, for as long as the block runs.

    A managed disk is granted read access for the block and revoked afterwards.
    """
    with adapter_for(ref).open_read(ref, CONNECTORS) as found:
        yield found


@contextlib.contextmanager
def writable(ref: Any) -> Iterator[tuple[FileSystem, str]]:
    """The file system and path a stage writes the file ``ref`` at."""
    with adapter_for(ref).open_write(ref, CONNECTORS) as found:
        yield found


@contextlib.contextmanager
def store_folder(ref: Any) -> Iterator[StoreFolder]:
    """The PVS store folder ``ref`` names (a folder on a file-share connector, or a local one)."""
    with adapter_for(ref).store_folder(ref, CONNECTORS) as folder:
        yield folder
