"""The compositing engine on Azure, against the Resource Manager stand-in with the disk data in Azurite.

The stand-in plays the hypervisor for run-command (tests/infra/arm_vms.py): the
bootstrap script really runs, and the agent really works on the disk copy.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imageport.disks.detect import open_disk
from imageport.engine.azure import AzureBackend, AzureSource
from imageport.engine.job import AgentMode
from imageport.engine.lifecycle import EngineCleanupFailed, EngineTimeout, Outcome, compositing_engine
from imageport.engine.reaper import reap
from imageport.errors import InputError, PlatformError
from imageport.models import PrepareOptions, TargetPlatform
from imageport.platforms.azure.disks import upload_to_managed_disk
from imageport.platforms.azure.session import AzureConfig

NETWORK = {"vnet": "vnet-ce", "subnet": "default"}


def session(settings: dict[str, str], **overrides: object):  # type: ignore[no-untyped-def]
    return AzureConfig(**{**settings, **NETWORK, **overrides}).build()


def download(arm, name: str) -> bytes:  # type: ignore[no-untyped-def]
    blob = arm.container.get_blob_client(arm._blob_name("rg-vdi", name))
    return blob.download_blob().readall()


def tagged(arm) -> list[str]:  # type: ignore[no-untyped-def]
    """Every VM, NIC, disk and snapshot carrying imageport's expiry tag (i.e. not a kept output)."""
    found = [f"vm {k}" for k, v in arm.vms.vms.items()] + [f"nic {k}" for k in arm.vms.nics]
    for table in ("disks", "snapshots"):
        found += [f"{table} {k}" for k, v in arm.table(table).items() if "imageport-expires" in v["tags"]]
    return found + [f"blob {b}" for b in ce_blobs(arm)]


def ce_blobs(arm) -> list[str]:  # type: ignore[no-untyped-def]
    """Every blob in the CE container (bundles, jobs, results): none may outlive its run."""
    container = arm.blobs.get_container_client("imageport-ce")
    return [b.name for b in container.list_blobs()] if container.exists() else []


@pytest.fixture
def source_disk(arm, azure_settings, windows_disks, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    with open_disk(windows_disks["gpt"]) as reader:
        upload_to_managed_disk(
            session(azure_settings), reader, "rg-vdi", "gold", checkpoint_dir=tmp_path, overwrite=True
        )
    return "gold"


def test_prepare_on_an_azure_ce_creates_vm_nic_and_copy_then_deletes_all_but_the_output(  # type: ignore[no-untyped-def]
    arm, azure_settings, source_disk
) -> None:
    before = hashlib.sha256(download(arm, source_disk)).hexdigest()
    outcome = Outcome()
    backend = AzureBackend(session(azure_settings))
    source = AzureSource("rg-vdi", source_disk, output_disk_name="gold-azure-ready")
    with compositing_engine(backend, source, AgentMode.PREPARE, "run-az", outcome=outcome) as ce:
        assert len(arm.vms.vms) == 1 and len(arm.vms.nics) == 1
        (vm,) = arm.vms.vms.values()
        assert vm["data"][0][0] == 0 and vm["doc"]["tags"]["imageport-run"] == "run-az"
        assert not any(c.get("properties", {}).get("publicIPAddress") for n in arm.vms.nics.values()
                       for c in n["doc"]["properties"]["ipConfigurations"])  # fmt: skip
        result = ce.run(ce.job(target_platform=TargetPlatform.AZURE, prepare=PrepareOptions(enable_rdp=True)))
    assert result.ok and result.result["verified"] is True and result.result["applied"] > 0
    assert {r.kind for r in outcome.created} == {"azure-vm", "azure-nic", "azure-os-disk", "azure-disk", "azure-blob"}
    assert result.agent_version.startswith("0.1.0+") and "prepare job for run run-az" in result.log
    assert outcome.output == "rg-vdi/gold-azure-ready"
    # The script the CE ran installs nothing and carries no job (the job is a blob behind a read-only SAS).
    (script,) = arm.vms.scripts
    assert not any(word in script for word in ("pip", "apt", "enable_rdp"))
    # Everything else is gone; the output is kept without an expiry, the source is unchanged.
    assert tagged(arm) == []
    output = arm.disks["rg-vdi/gold-azure-ready"]
    assert output["state"] == "Unattached" and output["tags"]["imageport-run"] == "run-az"
    assert hashlib.sha256(download(arm, source_disk)).hexdigest() == before
    assert download(arm, "gold-azure-ready") != download(arm, source_disk)
    # Again without overwrite: refused before anything is created.
    with (
        pytest.raises(Exception, match="gold-azure-ready exists"),
        compositing_engine(backend, source, AgentMode.PREPARE, "run-az2"),
    ):
        pass
    assert tagged(arm) == []


def test_faults_on_azure_leave_nothing(arm, azure_settings, source_disk) -> None:  # type: ignore[no-untyped-def]
    backend = AzureBackend(session(azure_settings))
    source = AzureSource("rg-vdi", source_disk)
    no_wait = {"sleep": lambda s: None}
    # The VM deployment fails after the NIC and the copy exist (Azure leaves a Failed VM behind).
    arm.vms.fail_vm_create = "simulated: no capacity for Standard_D2s_v5"
    with (
        pytest.raises(PlatformError, match="no capacity"),
        compositing_engine(backend, source, AgentMode.DIAGNOSTICS, "run-f1", **no_wait),
    ):
        pass
    assert tagged(arm) == []
    # The agent crashes.
    with (
        pytest.raises(Exception, match="without a result"),
        compositing_engine(backend, source, AgentMode.DIAGNOSTICS, "run-f2", **no_wait) as ce,
    ):
        ce.run(ce.job(simulate="crash"))
    assert tagged(arm) == []
    # The agent hangs past its timeout: the VM is deleted (which kills the script).
    with (
        pytest.raises(EngineTimeout, match="outlived its 3 s timeout"),
        compositing_engine(backend, source, AgentMode.DIAGNOSTICS, "run-f3", timeout_s=3, **no_wait) as ce,
    ):
        ce.run(ce.job(simulate="hang"))
    assert tagged(arm) == [] and not any(p.poll() is None for p in arm.vms.processes.values())


def test_deletion_failures_are_retried_then_reported_and_reaped(arm, azure_settings, source_disk) -> None:  # type: ignore[no-untyped-def]
    backend = AzureBackend(session(azure_settings))
    source = AzureSource("rg-vdi", source_disk)
    no_wait = {"sleep": lambda s: None}
    names: list[str] = []
    with compositing_engine(backend, source, AgentMode.DIAGNOSTICS, "run-d1", **no_wait) as ce:
        vm = ce.provisioned.engine.vm
        arm.vms.fail_deletes[vm] = 2  # fails twice, then works: retried quietly
    assert tagged(arm) == []
    with (
        pytest.raises(EngineCleanupFailed, match="could not remove 1 resource") as failed,
        compositing_engine(backend, source, AgentMode.DIAGNOSTICS, "run-d2", **no_wait) as ce,
    ):
        names.append(f"{ce.provisioned.engine.vm}-nic")
        arm.vms.fail_deletes[names[0]] = 10  # never within the retries
    assert [r.kind for r in failed.value.left] == ["azure-nic"]
    assert tagged(arm) == [f"nic rg-vdi/{names[0]}"]
    arm.vms.fail_deletes.clear()
    # The reaper finds it by its tags; a live run's and an untagged resource are left alone.
    arm.disks["rg-vdi/someone-elses"] = dict(arm.disks["rg-vdi/gold"], name="someone-elses", tags={})
    assert reap([backend], is_live=lambda run: run == "run-d2", run_id=None).deleted == []
    report = reap([backend], is_live=lambda run: False, run_id="run-d2")
    assert report.deleted == [f"azure azure-nic {names[0]} (run run-d2)"]
    assert tagged(arm) == [] and "rg-vdi/someone-elses" in arm.disks
    arm.disks.pop("rg-vdi/someone-elses")


def test_a_connector_without_a_subnet_is_refused_before_anything_is_created(arm, azure_settings, source_disk) -> None:  # type: ignore[no-untyped-def]
    backend = AzureBackend(AzureConfig(**azure_settings).build())
    with (
        pytest.raises(InputError, match="no vnet/subnet"),
        compositing_engine(backend, AzureSource("rg-vdi", source_disk), AgentMode.DIAGNOSTICS, "run-n"),
    ):
        pass
    assert tagged(arm) == [] and arm.vms.vms == {}
    public = AzureBackend(session(azure_settings, use_public_ip=True))
    with (
        pytest.raises(InputError, match="never gets a public IP"),
        compositing_engine(public, AzureSource("rg-vdi", source_disk), AgentMode.DIAGNOSTICS, "run-p"),
    ):
        pass
    assert tagged(arm) == [] and arm.vms.vms == {}


def test_prepare_can_leave_a_snapshot_as_its_output(arm, azure_settings, source_disk) -> None:  # type: ignore[no-untyped-def]
    outcome = Outcome()
    backend = AzureBackend(session(azure_settings))
    source = AzureSource("rg-vdi", source_disk, output_snapshot_name="gold-ready-snap", overwrite=True)
    with compositing_engine(backend, source, AgentMode.PREPARE, "run-snap", outcome=outcome) as ce:
        ce.run(ce.job(target_platform=TargetPlatform.AZURE, prepare=PrepareOptions(enable_rdp=True)))
    assert outcome.output == "rg-vdi/gold-ready-snap"
    snapshot = arm.snapshots["rg-vdi/gold-ready-snap"]
    assert snapshot["tags"]["imageport-run"] == "run-snap" and "imageport-expires" not in snapshot["tags"]
    assert tagged(arm) == []  # the intermediate disk, the VM and the NIC are gone
    blob = arm.container.get_blob_client(arm._blob_name("rg-vdi", "gold-ready-snap", "snapshots"))
    assert blob.download_blob().readall() != download(arm, source_disk)
