"""A logged-in XenServer 8 pool session through the vendor's SDK (``XenAPI.Session``), and the host's HTTP.

TLS is always verified: against the system CAs, the pool's CA (``ca_pem``), or by pinning the server
certificate's SHA-256 ``fingerprint`` (what ``xe host-get-server-certificate`` / XenCenter show admins).
The same trust serves the XML-RPC API and the host's HTTP handlers (``/export_raw_vdi``).

Pool-master failover: a pool member answers every login with ``HOST_IS_SLAVE [master address]``; the
session then logs in at that address (same port, same trust) once -- a member naming another member is
an error, not a loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import ssl
import xmlrpc.client
from typing import Any
from urllib.parse import urlencode

import XenAPI
from pydantic import Field, SecretStr, model_validator

from imageport.credentials import HostName, SecretsRegistered
from imageport.errors import PlatformError, XenServerNotMaster
from imageport.platforms.xenserver.errors import translate_xenapi_errors

API_TIMEOUT_S = 60.0
STREAM_TIMEOUT_S = 300.0  # a read of the export stream (the host reads the VDI while we wait)
ORIGINATOR = "imageport"


class XenServerConfig(SecretsRegistered):
    """How to reach a XenServer 8 pool (any host of it: a member sends us to the master)."""

    host: HostName = Field(description="Pool master (or any pool member) host name or IP address.")
    port: int = Field(default=443, ge=1, le=65535, description="HTTPS port of the XenAPI (xapi).")
    username: str = Field(default="root", min_length=1, description="XenServer user, e.g. root or an AD user.")
    password: SecretStr = Field(description="Password of that user.")
    ca_pem: str | None = Field(
        default=None, description="PEM certificate(s) of the CA that signed the pool's certificates."
    )
    fingerprint: str | None = Field(
        default=None,
        pattern=r"^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$",
        description="Pin the host certificate by its SHA-256 fingerprint (AA:BB:... 32 pairs) instead of CA trust.",
    )

    @model_validator(mode="after")
    def _one_trust_choice(self) -> XenServerConfig:
        if self.ca_pem and self.fingerprint:
            raise ValueError("choose one of ca_pem or fingerprint, not both")
        return self

    def build(self) -> XenServerSession:
        return XenServerSession(self)


class _PinnedConnection(http.client.HTTPSConnection):
    """HTTPS whose peer certificate must have the pinned SHA-256 fingerprint (checked before any byte is sent)."""

    pin: str = ""

    def connect(self) -> None:
        super().connect()
        der = self.sock.getpeercert(binary_form=True) or b""
        if hashlib.sha256(der).hexdigest() != self.pin:
            self.close()
            raise PlatformError(
                f"{self.host}:{self.port}: the TLS certificate's SHA-256 fingerprint is not the pinned one"
            )


class TlsTrust:
    """One TLS choice for every connection to the pool."""

    def __init__(self, config: XenServerConfig) -> None:
        self.pin = (config.fingerprint or "").replace(":", "").lower()
        if self.pin:
            self.context = ssl.create_default_context()
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE  # the pin is the trust: checked on every connection
        else:
            self.context = ssl.create_default_context(cadata=config.ca_pem) if config.ca_pem else (
                ssl.create_default_context())  # fmt: skip

    def connection(self, host: str, port: int, timeout: float) -> http.client.HTTPSConnection:
        if self.pin:
            conn = _PinnedConnection(host, port, context=self.context, timeout=timeout)
            conn.pin = self.pin
            return conn
        return http.client.HTTPSConnection(host, port, context=self.context, timeout=timeout)


class _Transport(xmlrpc.client.SafeTransport):
    """The SDK's XML-RPC over our TLS trust (``XenAPI.Session`` takes a transport)."""

    def __init__(self, trust: TlsTrust, port: int) -> None:
        super().__init__(context=trust.context)
        self.trust, self.port = trust, port

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        if self._connection and host == self._connection[0]:
            return self._connection[1]
        chost, self._extra_headers, _ = self.get_host_info(host)
        name = chost.rsplit(":", 1)[0] if chost.count(":") == 1 else chost
        self._connection = host, self.trust.connection(name.strip("[]"), self.port, API_TIMEOUT_S)
        return self._connection[1]


class XenServerSession:
    def __init__(self, config: XenServerConfig) -> None:
        self.config = config
        self.trust = TlsTrust(config)
        self.address = config.host  # where we are logged in: the master, after a failover
        self.session: Any = None

    @property
    def display(self) -> str:
        return f"xenserver://{self.address}:{self.config.port}"

    def _url(self, address: str) -> str:
        host = f"[{address}]" if ":" in address else address
        return f"https://{host}:{self.config.port}/"

    def connect(self) -> Any:
        """Log in (at the master the pool member names, if it is one); returns ``session.xenapi``."""
        try:
            self._login(self.config.host)
        except XenServerNotMaster as member:
            if not member.master or member.master == self.config.host:
                raise
            self._login(member.master)  # a second HOST_IS_SLAVE here is raised: no chains of members
        return self.session.xenapi

    def _login(self, address: str) -> None:
        cfg = self.config
        session = XenAPI.Session(self._url(address), transport=_Transport(self.trust, cfg.port))
        with translate_xenapi_errors(f"login to xenserver://{address}:{cfg.port} as {cfg.username}"):
            session.xenapi.login_with_password(cfg.username, cfg.password.get_secret_value(), "2.21", ORIGINATOR)
        self.session, self.address = session, address

    @property
    def api(self) -> Any:
        """The SDK's ``session.xenapi`` dispatcher (logs in on first use)."""
        if self.session is None:
            self.connect()
        return self.session.xenapi

    @property
    def handle(self) -> str:
        if self.session is None:
            self.connect()
        return str(self.session.handle)

    def close(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):  # an expired session cannot log out; it is gone anyway
                self.session.xenapi.session.logout()
            self.session = None

    def __enter__(self) -> XenServerSession:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def http_get(self, path: str, **query: str) -> http.client.HTTPResponse:
        """A GET on the logged-in host's HTTP handlers, authorised by ``session_id``; the response, status 200."""
        conn = self.trust.connection(self.address.strip("[]"), self.config.port, STREAM_TIMEOUT_S)
        where = f"GET {path} on {self.display}"
        with translate_xenapi_errors(where):
            conn.request("GET", f"{path}?{urlencode({'session_id': self.handle, **query})}")
            response = conn.getresponse()
        if response.status != 200:
            conn.close()
            raise PlatformError(f"{where}: HTTP {response.status} {response.reason}")
        return response

    def check(self) -> list[str]:
        """Log in (following a pool member to the master), name the pool, its master and API version; log out."""
        api = self.connect()
        try:
            with translate_xenapi_errors(f"inspect {self.display}"):
                (pool,) = api.pool.get_all()
                master = api.pool.get_master(pool)
                host = api.host.get_record(master)
                name = api.pool.get_name_label(pool) or "(unnamed)"
            facts = [f"logged in to pool {name} at {self.display} as {self.config.username}"]
            if self.address != self.config.host:
                facts.append(f"{self.config.host} is a pool member; the master is {self.address}")
            facts.append(f"master {host['name_label']}, API {host['API_version_major']}.{host['API_version_minor']}")
            return facts
        finally:
            self.close()
