"""The Azure backend: the CE is a VM in the connector's resource group, with a copy of the disk at LUN 0.

Provisioning order (each recorded in the ledger before it is created): the
disk copy (``createOption: Copy`` from the source disk or snapshot -- Citrix's
OutputDiskName; scratch unless this is a prepare), the NIC (on the
connector's subnet, no public IP), the OS disk's name, then the VM. The agent
is started by run-command with a bootstrap script that installs imageport if
the CE image lacks it; the job travels base64-encoded inside the script and
the result comes back compressed in the last 4 KiB of stdout, all that
run-command returns. Teardown: VM, OS disk, NIC, then the copy (unless kept).
A kept copy is finalized by dropping its expiry tag; with
``output_snapshot_name`` it becomes a snapshot and the intermediate disk goes.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from imageport.engine.backend import Ledger, Provisioned, Resource
from imageport.engine.job import AgentDisk, AgentJob, AgentResult, parse_result
from imageport.engine.tags import CeTags
from imageport.errors import InputError, NotFound, PlatformNotFound
from imageport.models import AzureSku
from imageport.platforms.azure import vms
from imageport.platforms.azure.disks import (
    HalfUpload,
    create_snapshot,
    get_or_none,
    half_uploaded,
    make_room,
    revoke_upload_grant,
)
from imageport.platforms.azure.errors import translate_azure_errors
from imageport.platforms.azure.session import AzureSession

VM, NIC, OS_DISK, DISK, SNAPSHOT = "azure-vm", "azure-nic", "azure-os-disk", "azure-disk", "azure-snapshot"
ORDER = {VM: 10, OS_DISK: 30, NIC: 40, DISK: 80, SNAPSHOT: 80}
PROVIDER_KIND = {
    "Microsoft.Compute/virtualMachines": VM,
    "Microsoft.Network/networkInterfaces": NIC,
    "Microsoft.Compute/disks": DISK,
    "Microsoft.Compute/snapshots": SNAPSHOT,
}


@dataclass(frozen=True)
class AzureSource:
    """A managed disk (or snapshot) in the connector's subscription, and what to call the prepared copy."""

    resource_group: str
    name: str
    snapshot: bool = False
    output_disk_name: str | None = None
    output_snapshot_name: str | None = None
    overwrite: bool = False
    sku: AzureSku = AzureSku.PREMIUM_LRS


@dataclass
class AzureEngine:
    vm: str


def bootstrap_script(job: AgentJob) -> list[str]:
    """The run-command script: install imageport if missing, run the agent once, print its compressed result."""
    try:
        pin = f"imageport=={version('imageport')}"
    except PackageNotFoundError:
        pin = "imageport"
    encoded = base64.b64encode(job.model_dump_json().encode()).decode()
    return [
        "set -u",
        "export DEBIAN_FRONTEND=noninteractive LIBGUESTFS_BACKEND=direct",
        "if ! python3 -c 'import imageport' 2>/dev/null; then",
        "  apt-get update -q >/dev/null && apt-get install -yq python3-pip python3-guestfs python3-hivex "
        "libguestfs-tools qemu-utils >/dev/null",
        f"  pip3 install -q '{pin}' >/dev/null",
        "fi",
        "work=$(mktemp -d); umask 077",
        f"echo '{encoded}' | base64 -d > \"$work/job.json\"",
        'IMAGEPORT_RESULT_ENCODING=zlib python3 -m imageport.engine.agent "$work/job.json" 2>"$work/agent.log" '
        "| tail -n 1",
        'rm -rf "$work"',
    ]


class AzureBackend:
    platform = "azure"

    def __init__(self, session: AzureSession) -> None:
        self.session = session
        self.rg = session.config.resource_group

    def provision(self, source: AzureSource, ledger: Ledger, *, keep_copy: bool) -> Provisioned:
        vms.subnet_id(self.session)  # fails before anything exists if the connector has no network for CEs
        if self.session.config.use_public_ip:
            raise InputError(
                f"{self.session.display}: use_public_ip is set, but a compositing engine never gets a public IP "
                "(the agent needs outbound access only); unset it or give the subnet a NAT gateway"
            )
        compute = self.session.compute()
        kind = "snapshot" if source.snapshot else "disk"
        where = f"{kind} {source.resource_group}/{source.name}"
        origin = get_or_none(compute.snapshots if source.snapshot else compute.disks, kind, source.resource_group,
                             source.name)  # fmt: skip
        if origin is None:
            raise PlatformNotFound(f"{where} not found")
        ce = f"imageport-ce-{ledger.tags.stage}-{uuid.uuid4().hex[:8]}"
        copy_name = f"{ce}-disk"
        if keep_copy:
            copy_name = source.output_disk_name or f"{source.name}-prepared"
            if source.output_snapshot_name:
                copy_name = f"{ce}-disk"  # the snapshot is the output; this disk is its intermediate
            self._refuse_existing(source, copy_name)
        tags = ledger.tags.as_dict()
        snapshot = source.output_snapshot_name if keep_copy else None  # the output becomes this snapshot
        output = ledger.creating(DISK, copy_name, order=ORDER[DISK], keep=keep_copy, final=snapshot)
        disk = {
            "location": self.session.config.location,
            "sku": {"name": source.sku.value},
            "tags": tags,
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": origin.id},
                "hyperVGeneration": origin.properties.hyper_v_generation,
                "osType": origin.properties.os_type,
            },
        }
        with translate_azure_errors(f"copy {where} into disk {copy_name}"):
            copy = compute.disks.begin_create_or_update(self.rg, copy_name, disk).result()
        ledger.creating(NIC, f"{ce}-nic", order=ORDER[NIC])
        nic_id = vms.create_nic(self.session, f"{ce}-nic", tags)
        ledger.creating(OS_DISK, f"{ce}-osdisk", order=ORDER[OS_DISK])
        ledger.creating(VM, ce, order=ORDER[VM])
        vms.create_vm(self.session, ce, nic_id, copy.id, f"{ce}-osdisk", tags)
        return Provisioned(AzureEngine(ce), AgentDisk(lun=0), output if keep_copy else None)

    def _refuse_existing(self, source: AzureSource, name: str) -> None:
        """Before anything is created: the output name must be free, or freed when ``overwrite``."""
        compute = self.session.compute()
        if source.output_snapshot_name:
            make_room(compute.snapshots, "snapshot", self.rg, source.output_snapshot_name, source.overwrite)
        else:
            make_room(compute.disks, "disk", self.rg, source.output_disk_name or name, source.overwrite)

    def run_agent(self, engine: AzureEngine, job: AgentJob, timeout_s: float) -> AgentResult:
        from imageport.engine.lifecycle import EngineTimeout

        message = vms.run_shell_script(self.session, engine.vm, bootstrap_script(job), timeout_s)
        if message is None:
            raise EngineTimeout(
                f"Azure CE {engine.vm}: the {job.mode.value} job outlived its {timeout_s:.0f} s timeout; "
                "the VM and its resources were deleted"
            )
        return parse_result(message, f"Azure CE {engine.vm}")

    def delete(self, resource: Resource) -> None:
        name = resource.id
        if resource.kind == VM:
            vms.delete_vm(self.session, name)
        elif resource.kind == NIC:
            vms.delete_nic(self.session, name)
        elif resource.kind in (DISK, OS_DISK, SNAPSHOT):
            compute = self.session.compute()
            ops = compute.snapshots if resource.kind == SNAPSHOT else compute.disks
            try:
                with translate_azure_errors(f"delete {resource.describe()}"):
                    ops.begin_delete(self.rg, name).result()
            except NotFound:
                return
        else:
            raise InputError(f"the Azure CE backend does not know resource kind {resource.kind!r}")

    def finalize(self, resource: Resource) -> str:
        name, snapshot = resource.id, resource.final
        compute = self.session.compute()
        kept = {k: v for k, v in resource.tags.as_dict().items() if k != "imageport-expires"}
        if snapshot:
            create_snapshot(self.session, self.rg, name, snapshot, tags=kept)
            self.delete(Resource(DISK, name, resource.tags))
            return f"{self.rg}/{snapshot}"
        with translate_azure_errors(f"keep disk {name} (drop its expiry tag)"):
            compute.disks.begin_update(self.rg, name, {"tags": kept}).result()
        return f"{self.rg}/{name}"

    def half_uploaded(self) -> list[HalfUpload]:
        return half_uploaded(self.session)

    def revoke_upload(self, name: str) -> str:
        return revoke_upload_grant(self.session.compute(), self.rg, name)

    def list_resources(self) -> list[Resource]:
        found = []
        for provider, name, raw_tags in vms.list_tagged(self.session):
            tags = CeTags.from_dict(raw_tags)
            if tags is None:
                continue
            kind = PROVIDER_KIND[provider]
            if kind == DISK and name.endswith("-osdisk"):
                kind = OS_DISK
            found.append(Resource(kind, name, tags, ORDER[kind]))
        return found
