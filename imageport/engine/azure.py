"""The Azure backend: the CE is a VM in the connector's resource group, with a copy of the disk at LUN 0.

Provisioning order (each recorded in the ledger before it is created): the
disk copy (``createOption: Copy`` from the source disk or snapshot -- Citrix's
OutputDiskName; scratch unless this is a prepare; encrypted as the source is),
the NIC (on the connector's subnet, no public IP), the agent bundle's blob,
the OS disk's name, then the VM (no managed identity; cloud-init custom data
with the distribution's packages unless the image is a prebuilt gallery
image). Per job, the job's blob and the result's blob are ledgered too; the
agent is started by run-command with the script of ``azure_bootstrap.py``,
which fetches bundle and job through read-only SAS URLs, checks the bundle's
sha256, runs it with the CE's own python3 and sends the result back through a
write-only SAS. Teardown: VM, OS disk, NIC, blobs, then the copy (unless kept).
A kept copy is finalized by dropping its expiry tag; with
``output_snapshot_name`` it becomes a snapshot and the intermediate disk goes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from imageport.disks.io import ByteSource, pieces
from imageport.engine import azure_bootstrap
from imageport.engine.backend import Ledger, Provisioned, Resource
from imageport.engine.bundle import AgentBundle, agent_bundle, verify_bundle
from imageport.engine.finalize import HelperVm
from imageport.engine.job import AgentDisk, AgentJob, AgentResult, BundleStamp
from imageport.engine.tags import CeTags
from imageport.errors import InputError, NotFound, PlatformNotFound
from imageport.guest.firstboot import LOG
from imageport.models import AzureSku
from imageport.names import prepared_name
from imageport.platforms.azure import vms
from imageport.platforms.azure.ce_storage import CeStorage
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
BLOB = "azure-blob"
ORDER = {VM: 10, OS_DISK: 30, NIC: 40, BLOB: 60, DISK: 80, SNAPSHOT: 80}
# Finalize reads the guest's log with Run Command (the Azure VM Agent in the image answers it; Azure returns
# the last 4096 bytes of output, which hold the runner's closing line). A missing file prints nothing.
READ_FIRSTBOOT_LOG = [f"Get-Content -LiteralPath '{LOG}' -Raw -ErrorAction SilentlyContinue"]
STDOUT, STDERR = "ComponentStatus/StdOut/succeeded", "ComponentStatus/StdErr/succeeded"
# How long the CE's SAS URLs live: reading the bundle and the job happens at the start (after cloud-init).
READ_SAS_S = 3600
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
    bundle: AgentBundle
    bundle_blob: str
    ledger: Ledger
    jobs: int = field(default=0)


class AzureBackend:
    platform = "azure"

    def __init__(self, session: AzureSession, bundle: AgentBundle | None = None) -> None:
        self.session = session
        self.rg = session.config.resource_group
        self._bundle = bundle  # default: the bundle of this checkout (built on first use)

    def storage(self) -> CeStorage:
        return CeStorage(self.session)

    def provision(self, source: AzureSource, ledger: Ledger, *, keep_copy: bool,
                  boot_diagnostics: bool = False) -> Provisioned:  # fmt: skip
        vms.subnet_id(self.session)  # fails before anything exists if the connector has no network for CEs
        storage = self.storage()  # and without a storage account to carry the bundle
        compute = self.session.compute()
        kind = "snapshot" if source.snapshot else "disk"
        where = f"{kind} {source.resource_group}/{source.name}"
        origin = get_or_none(compute.snapshots if source.snapshot else compute.disks, kind, source.resource_group,
                             source.name)  # fmt: skip
        if origin is None:
            raise PlatformNotFound(f"{where} not found")
        bundle = self._bundle or agent_bundle()
        verify_bundle(bundle.path, bundle.sha256)
        ce = f"imageport-ce-{ledger.tags.stage}-{uuid.uuid4().hex[:8]}"
        copy_name = f"{ce}-disk"
        if keep_copy:
            copy_name = source.output_disk_name or prepared_name(source.name)
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
                **_encryption_of(origin),
            },
        }
        with translate_azure_errors(f"copy {where} into disk {copy_name}"):
            copy = compute.disks.begin_create_or_update(self.rg, copy_name, disk).result()
        ledger.creating(NIC, f"{ce}-nic", order=ORDER[NIC])
        nic_id = vms.create_nic(self.session, f"{ce}-nic", tags)
        storage.ensure_container()
        bundle_blob = f"{ce}/agent-{bundle.sha256[:16]}.pex"
        ledger.creating(BLOB, bundle_blob, order=ORDER[BLOB])
        storage.upload(bundle_blob, bundle.path, tags)
        ledger.creating(OS_DISK, f"{ce}-osdisk", order=ORDER[OS_DISK])
        ledger.creating(VM, ce, order=ORDER[VM])
        # A prebuilt gallery image has the packages; a stock image gets them from cloud-init at first boot.
        data = None if self.session.config.ce_gallery_image else azure_bootstrap.custom_data()
        vms.create_vm(self.session, ce, nic_id, copy.id, f"{ce}-osdisk", tags, custom_data=data,
                      boot_diagnostics=boot_diagnostics)  # fmt: skip
        engine = AzureEngine(ce, bundle, bundle_blob, ledger)
        return Provisioned(engine, AgentDisk(lun=0), output if keep_copy else None)

    def boot_log(self, engine: AzureEngine) -> str:
        return vms.serial_console_log(self.session, engine.vm)

    def _refuse_existing(self, source: AzureSource, name: str) -> None:
        """Before anything is created: the output name must be free, or freed when ``overwrite``."""
        compute = self.session.compute()
        if source.output_snapshot_name:
            make_room(compute.snapshots, "snapshot", self.rg, source.output_snapshot_name, source.overwrite)
        else:
            make_room(compute.disks, "disk", self.rg, source.output_disk_name or name, source.overwrite)

    def run_agent(self, engine: AzureEngine, job: AgentJob, timeout_s: float) -> AgentResult:
        from imageport.errors import EngineTimeout

        where = f"Azure CE {engine.vm}"
        storage = self.storage()
        engine.jobs += 1
        job_blob, result_blob = f"{engine.vm}/job-{engine.jobs}.json", f"{engine.vm}/result-{engine.jobs}.tar.gz"
        tags = engine.ledger.tags.as_dict()
        job = job.model_copy(update={"bundle": BundleStamp(version=engine.bundle.version, sha256=engine.bundle.sha256)})
        engine.ledger.creating(BLOB, job_blob, order=ORDER[BLOB])
        engine.ledger.creating(BLOB, result_blob, order=ORDER[BLOB])  # the CE creates it; the run deletes it
        storage.upload(job_blob, job.model_dump_json().encode(), tags)  # an export job carries share credentials
        delivery = azure_bootstrap.Delivery(
            bundle_url=storage.url(engine.bundle_blob, READ_SAS_S),
            bundle_sha256=engine.bundle.sha256,
            job_url=storage.url(job_blob, READ_SAS_S),
            result_url=storage.url(result_blob, timeout_s + READ_SAS_S, write=True),
            mode=job.mode,
        )
        try:
            message = vms.run_shell_script(self.session, engine.vm, azure_bootstrap.bootstrap_script(delivery),
                                           timeout_s)  # fmt: skip
        finally:
            storage.delete(job_blob)  # read once; no reason to keep credentials around until teardown
        if message is None:
            raise EngineTimeout(
                f"{where}: the {job.mode.value} job outlived its {timeout_s:.0f} s timeout; "
                "the VM and its resources were deleted"
            )
        outcome = azure_bootstrap.parse_outcome(message, where)
        members = azure_bootstrap.unpack(storage.download(result_blob), outcome, where) if outcome.uploaded else {}
        return azure_bootstrap.result_of(outcome, members, where, storage.display)

    def reaches(self, url: str) -> bool:
        """An Azure CE fetches its bundle from Azure Storage by SAS URL already: any blob's read SAS will do."""
        return url.startswith(("https://", "http://"))

    def deliver(self, engine: AzureEngine, name: str, source: ByteSource) -> str:
        """A blob beside the bundle (ledgered, tagged, deleted at teardown) and its read-only SAS URL."""
        blob = f"{engine.vm}/installers/{name}"
        engine.ledger.creating(BLOB, blob, order=ORDER[BLOB])
        self.storage().upload(blob, pieces(source), engine.ledger.tags.as_dict(), length=source.size)
        return self.storage().url(blob, READ_SAS_S)

    def delete(self, resource: Resource) -> None:
        name = resource.id
        if resource.kind == VM:
            vms.delete_vm(self.session, name)
        elif resource.kind == NIC:
            vms.delete_nic(self.session, name)
        elif resource.kind == BLOB:
            self.storage().delete(name)
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

    # --- finalize: a helper VM booting the prepared disk itself (engine/finalize.py) -------------------------

    def boot_image(self, image: AzureSource, ledger: Ledger, helper: HelperVm) -> str:
        """A VM booting the managed disk as its OS disk, on a NIC of the CE subnet; returns the VM's name."""
        vms.subnet_id(self.session)  # before anything exists: the connector must name a network for helpers
        compute = self.session.compute()
        disk = get_or_none(compute.disks, "disk", image.resource_group, image.name)
        if disk is None:
            raise PlatformNotFound(f"disk {image.resource_group}/{image.name} not found")
        vm = f"imageport-finalize-{uuid.uuid4().hex[:8]}"
        tags = ledger.tags.as_dict()
        ledger.creating(NIC, f"{vm}-nic", order=ORDER[NIC])
        nic_id = vms.create_nic(self.session, f"{vm}-nic", tags)
        ledger.creating(VM, vm, order=ORDER[VM])
        os_type = str(getattr(disk.properties.os_type, "value", disk.properties.os_type) or "Windows")
        vms.boot_vm(self.session, vm, nic_id, disk.id, os_type, tags, helper.vm_size)
        return vm

    def firstboot_log(self, vm: str, timeout_s: float) -> str | None:
        statuses = vms.run_command(self.session, vm, "RunPowerShellScript", READ_FIRSTBOOT_LOG, timeout_s,
                                   "read the first-boot log")  # fmt: skip
        return None if statuses is None else statuses.get(STDOUT, "")

    def shut_down(self, vm: str) -> None:
        vms.deallocate_vm(self.session, vm)

    def image_id(self, image: AzureSource) -> str:
        return f"{image.resource_group}/{image.name}"

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
        if self.session.config.ce_storage_account_url:
            for name, raw_tags in self.storage().list_tagged():
                tags = CeTags.from_dict(raw_tags)
                if tags is not None:
                    found.append(Resource(BLOB, name, tags, ORDER[BLOB]))
        return found


def _encryption_of(origin: object) -> dict[str, object]:
    """The source's encryption settings, for its copy: the same type and disk encryption set (or none given)."""
    encryption = getattr(getattr(origin, "properties", None), "encryption", None)
    if encryption is None or getattr(encryption, "type", None) is None:
        return {}
    kind = encryption.type
    settings: dict[str, object] = {"type": str(getattr(kind, "value", kind))}  # the SDK's enum, or its string
    if getattr(encryption, "disk_encryption_set_id", None):
        settings["diskEncryptionSetId"] = encryption.disk_encryption_set_id
    return {"encryption": settings}
