"""Prefect blocks of imageport. ``prefect block register -m blocks`` registers them all."""

import blocks.redaction  # noqa: F401  (redacted logs and tracebacks wherever the Prefect layer runs)
from blocks.connectors import (
    CONNECTOR_KINDS,
    AhvConnector,
    AzureConnector,
    BlobContainerConnector,
    FileShareConnector,
    LocalConnector,
    VsphereConnector,
    XenServerConnector,
)

__all__ = ["CONNECTOR_KINDS", "AhvConnector", "AzureConnector", "BlobContainerConnector", "FileShareConnector",
           "LocalConnector", "VsphereConnector", "XenServerConnector"]
