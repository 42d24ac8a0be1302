"""A Prism Central (v4 APIs) session through the vendor's SDKs: ``ntnx_vmm_py_client`` and ``ntnx_prism_py_client``.

TLS verification is on by default, against the system CAs or the connector's ``ca_pem``. Two
explicit opt-outs exist: pin the server certificate's SHA-256 ``fingerprint`` (what Prism shows
admins), or ``verify_tls=False`` (labs). Version negotiation is off: imageport speaks the SDKs' own
API versions (vmm v4.3, prism v4.4), so a request is never silently rewritten to another version.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from pydantic import Field, SecretStr, model_validator

from imageport.credentials import HostName, SecretsRegistered
from imageport.platforms.ahv.errors import translate_ahv_errors
from imageport.platforms.tls import pem_file

FINGERPRINT = r"^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$"


class AhvConfig(SecretsRegistered):
    """How to reach Prism Central."""

    host: HostName = Field(description="Prism Central host name or IP address.")
    port: int = Field(default=9440, ge=1, le=65535, description="HTTPS port of the Prism Central v4 APIs.")
    username: str = Field(min_length=1, description="Prism Central user, e.g. admin or svc-imageport@corp.")
    password: SecretStr = Field(description="Password of that user.")
    verify_tls: bool = Field(default=True, description="Verify the server certificate (system CAs or ca_pem).")
    ca_pem: str | None = Field(
        default=None, description="PEM certificate(s) of the CA that signed Prism Central's certificate."
    )
    fingerprint: str | None = Field(
        default=None, pattern=FINGERPRINT,
        description="Pin the server certificate by its SHA-256 fingerprint (AA:BB:..., 32 bytes) instead of CA trust.",
    )  # fmt: skip
    image_ttl_hours: float = Field(
        default=6, gt=0, le=168,
        description="How long an export's temporary image may live before `imageport reap` deletes it.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _one_trust_choice(self) -> AhvConfig:
        if sum(bool(x) for x in (self.fingerprint, self.ca_pem, not self.verify_tls)) > 1:
            raise ValueError("choose one of ca_pem, fingerprint or verify_tls=false, not both")
        return self

    def build(self) -> AhvSession:
        return AhvSession(self)


class AhvSession:
    """The two SDK clients (vmm: VMs, images; prism: tasks), built lazily and closed together."""

    def __init__(self, config: AhvConfig) -> None:
        self.config = config
        self._vmm: Any = None
        self._prism: Any = None
        self._ca_path: str | None = None

    @property
    def display(self) -> str:
        return f"prism://{self.config.host}:{self.config.port}"

    def _configure(self, configuration: Any) -> Any:
        cfg = self.config
        configuration.host = cfg.host
        configuration.port = cfg.port
        configuration.username = cfg.username
        configuration.password = cfg.password.get_secret_value()
        configuration.verify_ssl = cfg.verify_tls and not cfg.fingerprint
        configuration.max_retry_attempts = 3  # the SDK's own 429/503 retries; ours sit above (retry.py)
        configuration.backoff_factor = 1
        if cfg.ca_pem:
            configuration.root_ca_certificate_file = self._ca_file()
        return configuration

    def _client(self, module: Any) -> Any:
        client = module.ApiClient(configuration=self._configure(module.Configuration()),
                                  allow_version_negotiation=False)  # fmt: skip
        if self.config.fingerprint:  # urllib3 checks the pinned certificate on every connection of the pool
            client.rest_client.pool_manager.connection_pool_kw["assert_fingerprint"] = self.config.fingerprint
        return client

    @property
    def vmm(self) -> Any:
        if self._vmm is None:
            import ntnx_vmm_py_client

            self._vmm = self._client(ntnx_vmm_py_client)
        return self._vmm

    @property
    def prism(self) -> Any:
        if self._prism is None:
            import ntnx_prism_py_client

            self._prism = self._client(ntnx_prism_py_client)
        return self._prism

    def vms_api(self) -> Any:
        from ntnx_vmm_py_client import VmApi

        return VmApi(api_client=self.vmm)

    def images_api(self) -> Any:
        from ntnx_vmm_py_client import ImagesApi

        return ImagesApi(api_client=self.vmm)

    def recovery_points_api(self) -> Any:
        from ntnx_vmm_py_client import VmRecoveryPointsApi

        return VmRecoveryPointsApi(api_client=self.vmm)

    def tasks_api(self) -> Any:
        from ntnx_prism_py_client import TasksApi

        return TasksApi(api_client=self.prism)

    def base_url(self) -> str:
        return f"https://{self.config.host}:{self.config.port}"

    def _ca_file(self) -> str:
        if self._ca_path is None:
            self._ca_path = pem_file(self.config.ca_pem or "")
        return self._ca_path

    def check(self) -> list[str]:
        """Log in for real: an authenticated list of VMs (``$limit=1``), the number Prism says it has."""
        with translate_ahv_errors(f"log in to {self.display} as {self.config.username}"):
            listed = self.vms_api().list_vms(_limit=1)
        total = getattr(listed.metadata, "total_available_results", None)
        return [f"logged in to Prism Central at {self.display} as {self.config.username}",
                f"{total if total is not None else len(listed.data or [])} VMs visible"]  # fmt: skip

    def close(self) -> None:
        for client in (self._vmm, self._prism):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.rest_client.pool_manager.clear()
        self._vmm = self._prism = None
        if self._ca_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._ca_path)
            self._ca_path = None

    def __enter__(self) -> AhvSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
