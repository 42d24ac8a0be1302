"""TLS trust material the HTTP clients need as files: a connector keeps its CA as PEM text."""

from __future__ import annotations

import tempfile


def pem_file(pem: str) -> str:
    """Write ``pem`` to a new temporary ``.pem`` file (requests and urllib3 take a CA bundle by path); its path.

    The caller owns the file: it is kept for the session that trusts it."""
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as handle:
        handle.write(pem)
    return handle.name
