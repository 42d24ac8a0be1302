"""Connector configs pointed at the suite's services: one definition for every test that needs one."""

from __future__ import annotations

from typing import Any

from imageport.platforms.vsphere.session import VsphereConfig
from imageport.storage.smb import SmbShareConfig


def samba_share(samba: Any, base_path: str | None = None, port: int | None = None, **overrides: Any) -> SmbShareConfig:
    """The suite's Samba share (``port`` to go through a proxy), under ``base_path``."""
    fields = {
        "server": "127.0.0.1",
        "port": port or samba.port,
        "share": "share",
        "username": samba.info["username"],
        "password": samba.info["password"],
        "base_path": base_path,
        **overrides,
    }
    return SmbShareConfig(**fields)


def vcsim_vsphere(vcsim: Any, **overrides: Any) -> VsphereConfig:
    """The suite's vCenter simulator (its test certificate is not trusted: verification off)."""
    fields = {
        "host": "127.0.0.1",
        "port": vcsim.port,
        "username": vcsim.info["username"],
        "password": vcsim.info["password"],
        "verify_tls": False,
        **overrides,
    }
    return VsphereConfig(**fields)


def xapi_xenserver(xapi: Any, **overrides: Any) -> Any:
    """The suite's XenServer pool stand-in (``tests/infra/xapi_standin.py``), its CA trusted."""
    from imageport.platforms.xenserver.session import XenServerConfig

    fields = {"host": "127.0.0.1", "port": xapi.port, "username": xapi.username, "password": xapi.password,
              "ca_pem": xapi.cert.read_text(), **overrides}  # fmt: skip
    return XenServerConfig(**fields)
