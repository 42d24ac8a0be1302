"""Azure helper VMs for the compositing engine: NIC, VM with a data disk, run-command, listing.

Bodies are sent in the REST shape (camelCase), which azure-mgmt-compute's
operations accept as JSON; NICs go through the same authenticated pipeline
with plain REST (``Microsoft.Network``), so no second SDK is needed for one
resource type. No public IP is ever created, nor a managed identity; the CE
needs only outbound access (its storage account's blobs, the distribution's
mirrors unless its image is prebuilt, the share of an export).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from azure.core.rest import HttpRequest

from imageport.errors import InputError, NotFound, PlatformError, PlatformUnreachable
from imageport.platforms.azure.errors import translate_azure_errors
from imageport.platforms.azure.session import AzureSession

NETWORK_API = "2023-09-01"
LRO_TIMEOUT_S = 600
BOOT_LOG_SAS_MINUTES = 10  # the console log is downloaded right away


def _rg_path(session: AzureSession, provider: str, name: str = "") -> str:
    cfg = session.config
    path = f"/subscriptions/{cfg.subscription_id}/resourceGroups/{cfg.resource_group}/providers/{provider}"
    return f"{path}/{name}" if name else path


def subnet_id(session: AzureSession) -> str:
    cfg = session.config
    if not (cfg.vnet and cfg.subnet):
        raise InputError(
            f"{session.display}: the connector names no vnet/subnet; a compositing engine needs one to join"
        )
    rg = cfg.vnet_resource_group or cfg.resource_group
    return (
        f"/subscriptions/{cfg.subscription_id}/resourceGroups/{rg}/providers/Microsoft.Network/"
        f"virtualNetworks/{cfg.vnet}/subnets/{cfg.subnet}"
    )


def _send(compute: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{path}?api-version={NETWORK_API}"
    response = compute.send_request(HttpRequest(method, url, json=body))
    response.raise_for_status()
    return response


def _wait_async(compute: Any, response: Any, where: str) -> None:
    """Follow a long-running operation's ``Azure-AsyncOperation`` URL until it ends; raise if it failed."""
    url = response.headers.get("Azure-AsyncOperation")
    deadline = time.monotonic() + LRO_TIMEOUT_S
    while url:
        status = compute.send_request(HttpRequest("GET", url))
        status.raise_for_status()
        doc = status.json()
        state = doc.get("status", "InProgress")
        if state == "Succeeded":
            return
        if state in ("Failed", "Canceled"):
            error = doc.get("error") or {}
            raise PlatformError(f"{where}: {state} ({error.get('code', '?')}: {error.get('message', '')})")
        if time.monotonic() > deadline:
            raise PlatformUnreachable(f"{where}: still in progress after {LRO_TIMEOUT_S} s")
        time.sleep(float(status.headers.get("retry-after-ms", 1000)) / 1000)


def create_nic(session: AzureSession, name: str, tags: dict[str, str]) -> str:
    """A NIC on the connector's subnet, without a public IP; returns its id."""
    compute = session.compute()
    path = _rg_path(session, "Microsoft.Network/networkInterfaces", name)
    body = {
        "location": session.config.location,
        "tags": tags,
        "properties": {
            "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet_id(session)}}}]
        },
    }
    with translate_azure_errors(f"create NIC {name}"):
        response = _send(compute, "PUT", path, body)
        _wait_async(compute, response, f"create NIC {name}")
        doc = _send(compute, "GET", path).json()
    return str(doc["id"])


def delete_nic(session: AzureSession, name: str) -> None:
    compute = session.compute()
    path = _rg_path(session, "Microsoft.Network/networkInterfaces", name)
    try:
        with translate_azure_errors(f"delete NIC {name}"):
            _wait_async(compute, _send(compute, "DELETE", path), f"delete NIC {name}")
    except NotFound:
        return


def list_tagged(session: AzureSession) -> list[tuple[str, str, dict[str, str]]]:
    """(type, name, tags) of every VM, NIC, disk and snapshot in the connector's resource group."""
    compute = session.compute()
    found: list[tuple[str, str, dict[str, str]]] = []
    for provider, api in (
        ("Microsoft.Compute/virtualMachines", "2024-07-01"),
        ("Microsoft.Network/networkInterfaces", NETWORK_API),
        ("Microsoft.Compute/disks", "2024-03-02"),
        ("Microsoft.Compute/snapshots", "2024-03-02"),
    ):
        with translate_azure_errors(f"list {provider} in {session.config.resource_group}"):
            url: str | None = f"{_rg_path(session, provider)}?api-version={api}"
            while url:
                response = compute.send_request(HttpRequest("GET", url))
                response.raise_for_status()
                page = response.json()
                found += [(provider, item["name"], item.get("tags") or {}) for item in page.get("value", [])]
                url = page.get("nextLink")
    return found


def image_reference(session: AzureSession) -> dict[str, str]:
    """The CE's image: the prebuilt gallery image if the connector names one, else the marketplace URN."""
    cfg = session.config
    if cfg.ce_gallery_image:
        return {"id": cfg.ce_gallery_image}
    try:
        publisher, offer, sku, version = cfg.ce_image.split(":")
    except ValueError:
        raise InputError(f"ce_image {cfg.ce_image!r}: use publisher:offer:sku:version") from None
    return {"publisher": publisher, "offer": offer, "sku": sku, "version": version}


def create_vm(
    session: AzureSession,
    name: str,
    nic_id: str,
    data_disk_id: str,
    os_disk_name: str,
    tags: dict[str, str],
    custom_data: str | None = None,
    boot_diagnostics: bool = False,
) -> None:
    """The CE VM: the connector's image and size, one NIC, the disk copy at LUN 0, and a throwaway login.

    No ``identity`` (the CE holds no credential of its own: it reaches only its SAS URLs) and no public IP.
    ``custom_data`` is cloud-init's cloud-config (the distribution's packages), base64.
    ``boot_diagnostics``: managed boot diagnostics (no storage account of ours: Azure keeps the console), read
    back with ``serial_console_log``.
    """
    cfg = session.config
    os_profile: dict[str, str] = {
        "computerName": name[:15],
        "adminUsername": "imageport",
        "adminPassword": secrets.token_urlsafe(24) + "Aa1!",
    }
    if custom_data is not None:
        os_profile["customData"] = custom_data
    body = {
        "location": cfg.location,
        "tags": tags,
        "properties": {
            "hardwareProfile": {"vmSize": cfg.ce_vm_size},
            "storageProfile": {
                "imageReference": image_reference(session),
                "osDisk": {
                    "name": os_disk_name,
                    "createOption": "FromImage",
                    "deleteOption": "Delete",
                    "managedDisk": {"storageAccountType": "Premium_LRS"},
                },
                "dataDisks": [{"lun": 0, "createOption": "Attach", "managedDisk": {"id": data_disk_id}}],
            },
            # Nobody logs in: the agent is started by run-command. The password is random and never kept.
            "osProfile": os_profile,
            "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"deleteOption": "Detach"}}]},
        },
    }
    if boot_diagnostics:
        body["properties"]["diagnosticsProfile"] = {"bootDiagnostics": {"enabled": True}}  # type: ignore[index]
    compute = session.compute()
    with translate_azure_errors(f"create compositing-engine VM {name}"):
        compute.virtual_machines.begin_create_or_update(cfg.resource_group, name, body).result()


def boot_vm(session: AzureSession, name: str, nic_id: str, os_disk_id: str, os_type: str, tags: dict[str, str],
            size: str | None = None) -> None:  # fmt: skip
    """A helper VM that boots an existing managed disk as its OS disk (finalize): ``createOption: Attach``.

    Azure takes no ``osProfile`` (nor image) for an attached OS disk: the guest is what the disk holds. The
    disk is detached, not deleted, with the VM (``deleteOption: Detach``); the NIC likewise. No identity, no
    public IP, as for a CE.
    """
    cfg = session.config
    body = {
        "location": cfg.location,
        "tags": tags,
        "properties": {
            "hardwareProfile": {"vmSize": size or cfg.ce_vm_size},
            "storageProfile": {
                "osDisk": {
                    "osType": os_type,
                    "createOption": "Attach",
                    "deleteOption": "Detach",
                    "managedDisk": {"id": os_disk_id},
                },
            },
            "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"deleteOption": "Detach"}}]},
        },
    }
    compute = session.compute()
    with translate_azure_errors(f"create helper VM {name} booting {os_disk_id.rsplit('/', 1)[-1]}"):
        compute.virtual_machines.begin_create_or_update(cfg.resource_group, name, body).result()


def deallocate_vm(session: AzureSession, name: str) -> None:
    """Shut the VM down and release its compute (its disks keep what the guest wrote)."""
    compute = session.compute()
    with translate_azure_errors(f"deallocate VM {name}"):
        compute.virtual_machines.begin_deallocate(session.config.resource_group, name).result()


def serial_console_log(session: AzureSession, name: str) -> str:
    """The VM's serial console log (managed boot diagnostics), through the short-lived SAS URI Azure hands out."""
    from azure.storage.blob import BlobClient

    compute = session.compute()
    with translate_azure_errors(f"read the boot diagnostics of VM {name}"):
        uris = compute.virtual_machines.retrieve_boot_diagnostics_data(
            session.config.resource_group, name, sas_uri_expiration_time_in_minutes=BOOT_LOG_SAS_MINUTES
        )
    if not uris.serial_console_log_blob_uri:
        return ""  # enabled, but the VM has written nothing to its console yet
    with translate_azure_errors(f"download the serial console log of VM {name}"):
        data = BlobClient.from_blob_url(uris.serial_console_log_blob_uri).download_blob().readall()
    return bytes(data).decode(errors="replace")


def delete_vm(session: AzureSession, name: str) -> None:
    compute = session.compute()
    try:
        with translate_azure_errors(f"delete VM {name}"):
            compute.virtual_machines.begin_delete(session.config.resource_group, name).result()
    except NotFound:
        return


def run_command(session: AzureSession, name: str, command_id: str, script: list[str], timeout_s: float,
                what: str) -> dict[str, str] | None:  # fmt: skip
    """Run a script on the VM (``RunShellScript`` on Linux, ``RunPowerShellScript`` on Windows); its statuses'
    messages by code (Windows answers ``ComponentStatus/StdOut/succeeded`` and ``.../StdErr/...``), or None if it
    did not finish in time."""
    compute = session.compute()
    body = {"commandId": command_id, "script": script}
    with translate_azure_errors(f"{what} on {name}"):
        poller = compute.virtual_machines.begin_run_command(session.config.resource_group, name, body)
        poller.wait(timeout=timeout_s)
        if not poller.done():
            return None
        result = poller.result()
    return {str(status.code): str(status.message) for status in result.value}


def run_shell_script(session: AzureSession, name: str, script: list[str], timeout_s: float) -> str | None:
    """Run a shell script on the VM (RunShellScript); its message, or None if it did not finish in time."""
    statuses = run_command(session, name, "RunShellScript", script, timeout_s, "run the agent")
    return None if statuses is None else "\n".join(statuses.values())
