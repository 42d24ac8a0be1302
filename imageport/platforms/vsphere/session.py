"""A logged-in vCenter (or ESXi) session through pyVmomi.

TLS verification is on by default. Two explicit opt-outs exist: pin the
server certificate's SHA-1 ``thumbprint`` (what vSphere shows admins), or set
``verify_tls=False`` (labs and the simulator).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import Field, SecretStr, model_validator
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from imageport.credentials import HostName, SecretsRegistered
from imageport.errors import InputError, PlatformNotFound, VsphereSessionExpired
from imageport.models.vocabulary import refuse_retired
from imageport.platforms.tls import pem_file
from imageport.platforms.vsphere.errors import translate_vsphere_errors
from imageport.storage.datastore import DatastoreFileSystem, DatastoreLocation

# Decision: a vSphere CE has no network card at all (platforms/vsphere/ce_host.py removes the template's): it
# reads and writes through the datastore and guestinfo only, so a port group for it would be accepted and ignored.
RETIRED = {
    "ce_network": "a vSphere compositing engine gets no network card (it works through the datastore and "
    "guestinfo); leave ce_network out, and export to a share from a local or Azure CE",
}


class VsphereConfig(SecretsRegistered):
    """How to reach vCenter, and where compositing engines may be placed."""

    host: HostName = Field(description="vCenter (or ESXi) host name or IP address.")
    port: int = Field(default=443, ge=1, le=65535, description="HTTPS port of the vSphere API.")
    username: str = Field(description="vSphere user, e.g. administrator@vsphere.local.")
    password: SecretStr = Field(description="Password of that user.")
    verify_tls: bool = Field(default=True, description="Verify the server certificate against the system CAs.")
    ca_pem: str | None = Field(
        default=None, description="PEM certificate(s) of the CA that signed vCenter's certificate (e.g. the VMCA root)."
    )
    thumbprint: str | None = Field(
        default=None,
        pattern=r"^([0-9A-Fa-f]{2}:){19}[0-9A-Fa-f]{2}$",
        description="Pin the server certificate by its SHA-1 thumbprint (AA:BB:...) instead of CA trust.",
    )
    datacenter: str | None = Field(default=None, description="Datacenter to work in (default: the only one).")
    datastore: str | None = Field(default=None, description="Datastore for exports, imports and CE disks.")
    ce_template: str | None = Field(default=None, description="VM or template the compositing engine is cloned from.")
    ce_resource_pool: str | None = Field(default=None, description="Resource pool for compositing-engine VMs.")
    ce_max_concurrent: int = Field(
        default=4, ge=1, le=64, description="Compositing engines allowed at once here (a Prefect concurrency limit)."
    )

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: object) -> object:
        return refuse_retired(data, RETIRED)

    @model_validator(mode="after")
    def _one_trust_choice(self) -> VsphereConfig:
        if sum(bool(x) for x in (self.thumbprint, self.ca_pem, not self.verify_tls)) > 1:
            raise ValueError("choose one of ca_pem, thumbprint or verify_tls=false, not both")
        return self

    def build(self) -> VsphereSession:
        return VsphereSession(self)


T = TypeVar("T")


class VsphereSession:
    def __init__(self, config: VsphereConfig) -> None:
        self.config = config
        self.si: Any = None

    @property
    def display(self) -> str:
        return f"vsphere://{self.config.host}:{self.config.port}"

    def connect(self) -> Any:
        cfg = self.config
        # pyVmomi does not verify unless handed a verifying context, so always pass one.
        context = ssl.create_default_context(cadata=cfg.ca_pem) if cfg.ca_pem else ssl.create_default_context()
        kwargs: dict[str, Any] = {"sslContext": context}
        if cfg.thumbprint or not cfg.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            # The simulator's test certificate is RSA-1024, which OpenSSL 3 refuses at level 2.
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            if cfg.thumbprint:
                kwargs["thumbprint"] = cfg.thumbprint.replace(":", "").lower()
        with translate_vsphere_errors(f"login to {self.display} as {cfg.username}"):
            self.si = SmartConnect(
                host=cfg.host,
                port=cfg.port,
                user=cfg.username,
                pwd=cfg.password.get_secret_value(),
                httpConnectionTimeout=30,
                **kwargs,
            )
        return self.si

    def call(self, action: Callable[[Any], T]) -> T:
        """Run ``action(si)``; if the vCenter session has expired meanwhile, log in again once and retry.

        Long transfers outlive vCenter's idle session timeout (30 min by default); the clean-up
        after them (removing a snapshot) must still happen.
        """
        try:
            return action(self.si or self.connect())
        except VsphereSessionExpired:
            self.si = None
            return action(self.connect())

    def close(self) -> None:
        if self.si is not None:
            with contextlib.suppress(Exception):  # an expired session cannot log out; it is gone anyway
                Disconnect(self.si)
            self.si = None

    def __enter__(self) -> VsphereSession:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def datacenter(self) -> Any:
        content = (self.si or self.connect()).RetrieveContent()  # a CE backend's session logs in here
        dcs = [e for e in content.rootFolder.childEntity if isinstance(e, vim.Datacenter)]
        if self.config.datacenter:
            dcs = [dc for dc in dcs if dc.name == self.config.datacenter]
            if not dcs:
                raise PlatformNotFound(f"{self.display}: no datacenter named {self.config.datacenter!r}")
        if len(dcs) != 1:
            names = ", ".join(dc.name for dc in dcs) or "none"
            raise PlatformNotFound(f"{self.display}: name one datacenter (found: {names})")
        return dcs[0]

    def datastore_files(self, datastore: str | None = None) -> DatastoreFileSystem:
        """Files on a datastore over HTTPS ``/folder``, authorised by this session."""
        return DatastoreFileSystem(self.datastore_location(datastore))

    def datastore_location(self, datastore: str | None = None) -> DatastoreLocation:
        """The URL, cookie and TLS trust of a datastore's ``/folder`` endpoint (logs in if needed)."""
        if self.si is None:
            self.connect()
        name = datastore or self.config.datastore
        if not name:
            raise InputError(f"{self.display}: name a datastore (connector field datastore, or --datastore)")
        dc = self.datacenter()
        if not any(ds.name == name for ds in dc.datastore):
            raise PlatformNotFound(f"{self.display}: datacenter {dc.name} has no datastore {name!r}")
        cfg = self.config
        verify: bool | str = cfg.verify_tls
        if cfg.ca_pem:
            verify = self._ca_file()
        return DatastoreLocation(
            base_url=f"https://{cfg.host}:{cfg.port}",
            datacenter=dc.name,
            datastore=name,
            cookie=self.si._stub.cookie,  # the SOAP session's cookie authorises /folder too
            verify=verify,
            thumbprint=cfg.thumbprint,
        )

    def _ca_file(self) -> str:
        if getattr(self, "_ca_path", None) is None:
            self._ca_path = pem_file(self.config.ca_pem or "")
        return self._ca_path

    def check(self) -> list[str]:
        """Log in, read the API version and find the datacenter and datastore."""
        self.connect()
        try:
            with translate_vsphere_errors(f"inspect {self.display}"):
                about = self.si.content.about
                facts = [f"logged in to {about.fullName} at {self.display} as {self.config.username}"]
                dc = self.datacenter()
                facts.append(f"datacenter {dc.name} found")
                if self.config.datastore:
                    if not any(ds.name == self.config.datastore for ds in dc.datastore):
                        raise PlatformNotFound(
                            f"{self.display}: datacenter {dc.name} has no datastore {self.config.datastore!r}"
                        )
                    facts.append(f"datastore {self.config.datastore} found")
            return facts
        finally:
            self.close()
