"""``imageport server``: Prefect's server (API, UI, background services) behind the gateway, in one process.

What ``prefect server start`` runs in the foreground (``create_app(final=True)`` under uvicorn), with
``deployments.gateway.Gateway`` wrapped around it. Without users (no users file, or an empty one)
there is nobody to check a credential against: that is allowed on a loopback address only, where
the machine's own users are the only callers, and refused anywhere else.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from pathlib import Path

from deployments.gateway import Gateway
from imageport.access.allow_list import POLICY
from imageport.access.identity import IdentityProvider, UsersFileProvider
from imageport.access.routes import RouteIndex
from imageport.errors import InputError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def identity_provider(host: str, users_file: Path) -> IdentityProvider | None:
    """The users file's provider; None (no authentication) only on loopback without users."""
    provider = UsersFileProvider(users_file)
    if provider.has_users():
        return provider
    if not is_loopback(host):
        raise InputError(
            f"refusing to serve on {host} without users: {users_file} has none "
            "(add one: imageport users add NAME --role administrator), or bind 127.0.0.1"
        )
    logging.getLogger("imageport.audit").warning(
        "imageport-audit no users in %s: every local caller is an administrator (restart after adding users)",
        users_file,
    )
    return None


def _audit_to_stderr() -> None:
    audit = logging.getLogger("imageport.audit")
    if not audit.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    audit.propagate = False


def gateway_app(provider: IdentityProvider | None) -> Gateway:
    """Prefect's full app (API + UI + services) behind the gateway, its routes from its own OpenAPI."""
    from prefect.server.api.server import create_app

    app = create_app(final=True)
    websockets = [template for method, template in POLICY.rules if method == "WS"]
    routes = RouteIndex.from_openapi(app.api_app.openapi(), websockets)  # type: ignore[attr-defined]
    return Gateway(app, routes, provider)


def run_server(host: str, port: int, users_file: Path) -> None:
    import uvicorn

    provider = identity_provider(host, users_file)  # refused before anything starts
    _audit_to_stderr()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The UI's browser calls the API at this URL: this server's, unless the operator names the address
    # browsers reach it by (a host name, a TLS proxy) in PREFECT_UI_API_URL.
    os.environ.setdefault("PREFECT_UI_API_URL", f"http://{host}:{port}/api")
    uvicorn.run(gateway_app(provider), host=host, port=port, log_level="info")
