"""Azure identity and Resource Manager access for one subscription.

Three exclusive ways to authenticate, as Citrix's Azure connector offers:
a registered app (service principal), a managed identity (when imageport runs
in Azure), or azure-identity's DefaultAzureCredential chain (environment,
workload identity, Azure CLI login...). ``arm_endpoint`` and
``authority_host`` exist for sovereign clouds and the test stand-in.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import Field, SecretStr, model_validator

from imageport.credentials import EndpointUrl, SecretsRegistered
from imageport.models import AzureResourceGroup
from imageport.models.vocabulary import refuse_retired
from imageport.platforms.azure.errors import translate_azure_errors

GALLERY_IMAGE = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/galleries/[^/]+/images/[^/]+"
    r"(/versions/[^/]+)?$",
    re.IGNORECASE,
)
# Citrix's UsePublicIP: a CE never gets a public address here (the agent needs outbound access only).
RETIRED = {
    "use_public_ip": "a compositing engine never gets a public IP; give its subnet outbound access (a NAT "
    "gateway) to reach the CE storage account and the distribution's mirrors",
}
KNOWN_AUTHORITIES = ("login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn")


class AzureAuth(StrEnum):
    SERVICE_PRINCIPAL = "service-principal"
    MANAGED_IDENTITY = "managed-identity"
    DEFAULT = "default"


class AzureConfig(SecretsRegistered):
    auth: AzureAuth = Field(
        default=AzureAuth.SERVICE_PRINCIPAL,
        description="service-principal (tenant/client id + secret), managed-identity, or default (credential chain).",
    )
    tenant_id: str | None = Field(default=None, description="Entra ID tenant (service principal).")
    client_id: str | None = Field(
        default=None, description="App (client) id; for managed-identity, selects a user-assigned identity."
    )
    client_secret: SecretStr | None = Field(default=None, description="Client secret (service principal).")
    subscription_id: str = Field(description="Subscription that holds the disks and compositing engines.")
    resource_group: AzureResourceGroup = Field(description="Resource group for disks and temporary CE resources.")
    location: str = Field(default="eastus", description="Azure region, e.g. westeurope (Citrix default eastus).")
    ce_vm_size: str = Field(default="Standard_D2s_v5", description="VM size of the compositing engine.")
    ce_image: str = Field(
        default="Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest",
        description="Marketplace image URN (publisher:offer:sku:version) the compositing engine boots.",
    )
    ce_gallery_image: str | None = Field(
        default=None,
        description="Prebuilt CE image instead of ce_image: an Azure Compute Gallery image definition or version id "
        "(/subscriptions/.../galleries/G/images/D[/versions/V]); built by scripts/build-ce-image.sh, it needs no "
        "egress to the distribution's mirrors.",
    )
    ce_storage_account_url: EndpointUrl | None = Field(
        default=None,
        description="Blob endpoint of the storage account that carries the agent bundle, jobs and results to and "
        "from a CE (https://ACCOUNT.blob.core.windows.net); the CE's subnet must reach it.",
    )
    ce_storage_account_key: SecretStr | None = Field(
        default=None, description="Access key of that storage account (signs the short-lived per-blob SAS)."
    )
    ce_storage_container: str = Field(
        default="imageport-ce", pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
        description="Container for CE blobs (created if missing; every blob is deleted after its run).",
    )  # fmt: skip
    vnet_resource_group: str | None = Field(default=None, description="Resource group of the CE's virtual network.")
    vnet: str | None = Field(default=None, description="Virtual network the CE joins.")
    subnet: str | None = Field(default=None, description="Subnet the CE joins.")
    ce_max_concurrent: int = Field(
        default=4, ge=1, le=64, description="Compositing engines allowed at once here (a Prefect concurrency limit)."
    )
    arm_endpoint: EndpointUrl = Field(
        default="https://management.azure.com", description="Resource Manager endpoint (sovereign clouds)."
    )
    authority_host: EndpointUrl | None = Field(default=None, description="Entra ID authority host (sovereign clouds).")

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: object) -> object:
        return refuse_retired(data, RETIRED)

    @model_validator(mode="after")
    def _auth_fields(self) -> AzureConfig:
        if self.auth is AzureAuth.SERVICE_PRINCIPAL:
            missing = [n for n in ("tenant_id", "client_id", "client_secret") if not getattr(self, n)]
            if missing:
                raise ValueError(f"auth 'service-principal' needs {', '.join(missing)}")
        elif self.client_secret is not None:
            raise ValueError(f"auth '{self.auth.value}' takes no client_secret")
        if (self.vnet is None) != (self.subnet is None):
            raise ValueError("give both vnet and subnet, or neither")
        if (self.ce_storage_account_url is None) != (self.ce_storage_account_key is None):
            raise ValueError("give both ce_storage_account_url and ce_storage_account_key, or neither")
        if self.ce_gallery_image is not None and not GALLERY_IMAGE.match(self.ce_gallery_image):
            raise ValueError(
                "ce_gallery_image must be a gallery image id: "
                "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/galleries/G/images/D[/versions/V]"
            )
        return self

    def build(self) -> AzureSession:
        return AzureSession(self)


class AzureSession:
    def __init__(self, config: AzureConfig) -> None:
        self.config = config

    @property
    def display(self) -> str:
        return f"azure://{self.config.subscription_id}/{self.config.resource_group}"

    def credential(self) -> Any:
        from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential

        cfg = self.config
        extra: dict[str, Any] = {"authority": cfg.authority_host} if cfg.authority_host else {}
        if cfg.auth is AzureAuth.SERVICE_PRINCIPAL:
            assert cfg.tenant_id and cfg.client_id and cfg.client_secret  # guaranteed by the validator
            # MSAL knows the public and sovereign clouds; any other authority (AD FS, a test
            # stand-in) cannot be validated by Microsoft's instance discovery.
            host = (cfg.authority_host or "").rstrip("/")
            custom = bool(host) and not any(host.endswith(known) for known in KNOWN_AUTHORITIES)
            secret = cfg.client_secret.get_secret_value()
            return ClientSecretCredential(
                cfg.tenant_id, cfg.client_id, secret, disable_instance_discovery=custom, **extra
            )
        if cfg.auth is AzureAuth.MANAGED_IDENTITY:
            return ManagedIdentityCredential(client_id=cfg.client_id)
        return DefaultAzureCredential(**extra)

    def compute(self) -> Any:
        from azure.mgmt.compute import ComputeManagementClient

        scope = self.config.arm_endpoint.rstrip("/") + "/.default"
        return ComputeManagementClient(
            self.credential(),
            self.config.subscription_id,
            base_url=self.config.arm_endpoint,
            credential_scopes=[scope],
        )

    def check(self) -> list[str]:
        """Get a token, then read the resource group: proves identity and RBAC scope."""
        from azure.core.rest import HttpRequest

        cfg = self.config
        with translate_azure_errors(f"check {self.display}"):
            client = self.compute()
            url = f"/subscriptions/{cfg.subscription_id}/resourcegroups/{cfg.resource_group}?api-version=2021-04-01"
            response = client.send_request(HttpRequest("GET", url))
            response.raise_for_status()
            location = response.json().get("location", "?")
        return [f"token issued for {cfg.auth.value}", f"resource group {cfg.resource_group} readable ({location})"]
