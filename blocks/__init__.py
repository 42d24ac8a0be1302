"""Prefect blocks of imageport. ``prefect block register -m blocks`` registers them all."""

from blocks.connectors import (
    CONNECTOR_KINDS,
    AzureConnector,
    FileShareConnector,
    LocalConnector,
    VsphereConnector,
)

__all__ = ["CONNECTOR_KINDS", "AzureConnector", "FileShareConnector", "LocalConnector", "VsphereConnector"]
