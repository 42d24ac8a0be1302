"""The posture a compositing engine must keep, enforced by the ARM stand-in the way Azure Policy's deny effect is.

A request that breaks one of these rules is refused before anything is
created, with HTTP 403 and error code ``RequestDisallowedByPolicy`` naming the
resource (``target``) and the policy assignment (``additionalInfo``), as
Resource Manager answers for a deny assignment:
- NICs: no public IP; only on the allowed subnets (the connector's);
- VMs: no managed identity (system or user assigned);
- CE resources (NICs, VMs, disk copies): tagged with the run id and an expiry;
- a disk copy: encrypted as its source is (same type and disk encryption set).
"""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    """An ARM error answer, raised from a validation helper and returned by the operation."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.reply: tuple[int, dict[str, Any], str | None] = (status, {"error": {"code": code, "message": message}},
                                                              None)  # fmt: skip


RUN_TAG, EXPIRES_TAG = "imageport-run", "imageport-expires"
PLATFORM_KEY = {"type": "EncryptionAtRestWithPlatformKey"}


def deny(target: str, policy: str) -> Refusal:
    refusal = Refusal(403, "RequestDisallowedByPolicy", f"Resource '{target}' was disallowed by policy. "
                      f"Policy identifiers: '[{{\"policyAssignment\":{{\"name\":\"{policy}\"}}}}]'.")  # fmt: skip
    body = refusal.reply[1]["error"]
    body["target"] = target
    body["additionalInfo"] = [{"type": "PolicyViolation", "info": {"policyAssignmentName": policy}}]
    return refusal


def check_tags(target: str, body: dict[str, Any]) -> None:
    tags = body.get("tags") or {}
    if not tags.get(RUN_TAG) or not tags.get(EXPIRES_TAG):
        raise deny(target, f"Require tags {RUN_TAG} and {EXPIRES_TAG} on compositing-engine resources")


def check_nic(name: str, body: dict[str, Any], allowed_subnets: set[str]) -> None:
    configs = body.get("properties", {}).get("ipConfigurations") or []
    if any(c.get("properties", {}).get("publicIPAddress") for c in configs):
        raise deny(name, "Network interfaces should not have public IPs")
    for c in configs:
        subnet = str((c.get("properties", {}).get("subnet") or {}).get("id", ""))
        if subnet.lower() not in allowed_subnets:
            raise deny(name, "Network interfaces only on the approved subnets")
    check_tags(name, body)


def check_vm(name: str, body: dict[str, Any]) -> None:
    identity = body.get("identity") or {}
    if identity and str(identity.get("type", "None")).lower() != "none":
        raise deny(name, "Compositing-engine VMs have no managed identity")
    check_tags(name, body)


def encryption(settings: dict[str, Any] | None) -> dict[str, Any]:
    """Encryption settings as Azure reports them (platform-managed key when none were given)."""
    settings = {k: v for k, v in (settings or {}).items() if v}
    return settings or dict(PLATFORM_KEY)


def check_copy(name: str, body: dict[str, Any], origin: dict[str, Any]) -> None:
    check_tags(name, body)
    wanted = encryption(body.get("properties", {}).get("encryption"))
    source = encryption(origin.get("encryption"))
    if {k.lower(): str(v).lower() for k, v in wanted.items()} != {k.lower(): str(v).lower() for k, v in source.items()}:
        raise deny(name, "Disk copies are encrypted as their source (same disk encryption set)")
