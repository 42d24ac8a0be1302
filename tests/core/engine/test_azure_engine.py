"""The compositing engine on Azure, against the Resource Manager stand-in with the disk data in Azurite.

The stand-in plays the hypervisor for run-command (tests/infra/arm_vms.py): the
bootstrap script really runs -- in a clean machine with a stock interpreter and
no package index reachable -- and the agent bundle really works on the disk copy.
"""

from __future__ import annotations

import hashlib
import re
import zipapp
from pathlib import Path
from typing import Any

import pytest
from azure.core.rest import HttpRequest

from imageport.disks.detect import open_disk
from imageport.engine.azure import AzureBackend, AzureSource
from imageport.engine.bundle import AgentBundle
from imageport.engine.job import AgentMode, ExportDestination
from imageport.engine.lifecycle import Outcome, compositing_engine
from imageport.engine.reaper import reap
from imageport.engine.tags import CeTags
from imageport.errors import (
    BundleError,
    EngineCleanupFailed,
    EngineError,
    EngineTimeout,
    InputError,
    PlatformAccessDenied,
    PlatformError,
    ProtocolMismatch,
)
from imageport.models import PrepareOptions, TargetPlatform
from imageport.platforms.azure import vms
from imageport.platforms.azure.disks import upload_to_managed_disk
from imageport.platforms.azure.session import AzureConfig
from tests.conftest import ARM_SUBSCRIPTION
from tests.core.disks.images import MiB, make_raw, qemu_compare
from tests.infra.configs import samba_share

NETWORK = {"vnet": "vnet-ce", "subnet": "default"}
INSTALLS = re.compile(r"\b(pip3?|apt|apt-get|easy_install)\b")  # a package manager named in a CE script


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
    scripts_before = len(arm.vms.scripts)  # the stand-in is shared by the tests of this worker
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
    (script,) = arm.vms.scripts[scripts_before:]
    assert not INSTALLS.search(script) and "enable_rdp" not in script
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
    # Citrix's UsePublicIP is refused where the connector is read, naming what to do instead.
    with pytest.raises(ValueError, match="use_public_ip is not supported: a compositing engine never gets a public"):
        session(azure_settings, use_public_ip=True)
    assert "use_public_ip" not in AzureConfig.model_fields and session(azure_settings, use_public_ip=False)


def test_prepare_can_leave_a_snapshot_as_its_output(arm, azure_settings, source_disk) -> None:  # type: ignore[no-untyped-def]
    outcome = Outcome()
    backend = AzureBackend(session(azure_settings))
    source = AzureSource("rg-vdi", source_disk, output_snapshot_name="gold-ready-snap", overwrite=True)
    user = {"cost center": "vdi-7", "owner": "team/a"}  # the prepare's tags: on every resource the CE creates
    created_before = len(arm.created)
    with compositing_engine(backend, source, AgentMode.PREPARE, "run-snap", outcome=outcome, tags=user) as ce:
        ce.run(ce.job(target_platform=TargetPlatform.AZURE, prepare=PrepareOptions(enable_rdp=True)))
        # The CE's blobs as Azurite holds them while the CE lives, read through the SDK: index tags.
        container = arm.blobs.get_container_client("imageport-ce")
        (bundle,) = [b.name for b in container.list_blobs() if b.name.endswith(".pex")]
        assert container.get_blob_client(bundle).get_blob_tags() == {**user, **ce.ledger.tags.own()}
    assert outcome.output == "rg-vdi/gold-ready-snap"
    snapshot = arm.snapshots["rg-vdi/gold-ready-snap"]
    assert snapshot["tags"]["imageport-run"] == "run-snap" and "imageport-expires" not in snapshot["tags"]
    # Every resource, as the Resource Manager stand-in saw it created: the user's tags beside imageport's.
    made = arm.created[created_before:]
    assert {kind for kind, _, _ in made} == {"disk", "nic", "vm", "snapshot"}
    assert len(made) == 5  # the copy, its NIC, the VM and its OS disk, the output snapshot
    for kind, name, tags in made:
        assert {k: tags.get(k) for k in user} == user and tags["imageport-run"] == "run-snap", (kind, name, tags)
    assert tagged(arm) == []  # the intermediate disk, the VM and the NIC are gone
    blob = arm.container.get_blob_client(arm._blob_name("rg-vdi", "gold-ready-snap", "snapshots"))
    assert blob.download_blob().readall() != download(arm, source_disk)


# --- the real bootstrap: stock interpreters, no package index, the CE's own log ----------------------------

PYENV = Path.home() / ".pyenv" / "versions"


@pytest.fixture()
def stock_python(arm):  # type: ignore[no-untyped-def]
    """Sets the stock interpreter the next CE VM has as python3; restores Debian's afterwards."""

    def choose(version: str) -> str:
        arm.vms.interpreter = str(PYENV / version / "bin" / "python3")
        return arm.vms.interpreter

    yield choose
    arm.vms.interpreter = "/usr/bin/python3"


@pytest.fixture()
def small_disk(arm, azure_settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A 24 MiB managed disk 'small' (random runs of data), and its raw file."""
    raw = make_raw(tmp_path / "small.raw", 24 * MiB, runs=4, seed=17, max_run=2 * MiB)
    with open_disk(raw) as reader:
        upload_to_managed_disk(session(azure_settings), reader, "rg-vdi", "small", checkpoint_dir=tmp_path,
                               overwrite=True)  # fmt: skip
    return raw


@pytest.mark.parametrize("version", ["3.10.13", "3.12.1"])
def test_an_export_runs_the_bundle_under_a_stock_python_with_no_index_reachable(  # type: ignore[no-untyped-def]
    arm, azure_settings, samba, small_disk, stock_python, version
) -> None:
    stock_python(version)
    arm.vms.sandbox.allow(samba.port)  # the share an export writes to: the CE's subnet reaches it
    share = samba_share(samba, "ce-export")
    share.build().check()
    backend = AzureBackend(session(azure_settings))
    destination = ExportDestination(path=f"small-{version}.vhdx", share=share.model_dump(mode="json") | {
        "password": samba.info["password"]})  # fmt: skip
    with compositing_engine(backend, AzureSource("rg-vdi", "small"), AgentMode.EXPORT, f"run-x{version}") as ce:
        result = ce.run(ce.job(export=destination))
    assert result.ok and f"Python {version}" in result.log and result.agent_version.startswith("0.1.0+")
    exported = Path(samba.info["share_dir"]) / "ce-export" / f"small-{version}.vhdx"
    assert qemu_compare(small_disk, "raw", exported, "vhdx").returncode == 0
    (script,) = arm.vms.scripts[-1:]
    assert "sha256sum -c" in script and not INSTALLS.search(script)
    assert tagged(arm) == []


def test_a_ce_script_reaches_no_package_index_and_no_venv(arm, azure_settings, source_disk, stock_python) -> None:  # type: ignore[no-untyped-def]
    """The stand-in's run-command is a clean machine: pip, apt's mirrors and DNS fail; python3 is the stock one."""
    interpreter = stock_python("3.12.1")
    backend = AzureBackend(session(azure_settings))
    with compositing_engine(backend, AzureSource("rg-vdi", source_disk), AgentMode.DIAGNOSTICS, "run-net") as ce:
        script = [
            'python3 -m pip download --no-deps --retries 0 --timeout 3 -d "$(mktemp -d)" pip >/dev/null 2>&1; '
            "echo pip=$?",
            "curl -sS -m 5 -o /dev/null http://deb.debian.org/debian/ 2>/dev/null; echo apt-mirror=$?",
            "curl -sS -m 5 -o /dev/null https://pypi.org/simple/ 2>/dev/null; echo pypi=$?",
            "getent hosts pypi.org >/dev/null; echo dns=$?",
            'echo "path=$PATH"; echo "venv=${VIRTUAL_ENV:-none} pythonpath=${PYTHONPATH:-none}"',
            "python3 -c 'import sys; print(\"prefix=\" + sys.prefix)'",
        ]
        message = vms.run_shell_script(backend.session, ce.provisioned.engine.vm, script, 60)
    assert message is not None
    for probe in ("pip", "apt-mirror", "pypi", "dns"):
        assert re.search(rf"^{probe}=[1-9]", message, re.M), (probe, message)
    assert "venv=none pythonpath=none" in message and ".venv" not in message
    assert f"prefix={Path(interpreter).parent.parent}" in message
    assert tagged(arm) == []


def test_a_ce_that_cannot_reach_its_mirrors_fails_clearly_with_its_log(arm, azure_settings, source_disk) -> None:  # type: ignore[no-untyped-def]
    backend = AzureBackend(session(azure_settings))
    arm.vms.mirrors_reachable = False
    try:
        with (
            pytest.raises(EngineError, match="not ready") as failed,
            compositing_engine(backend, AzureSource("rg-vdi", source_disk), AgentMode.DIAGNOSTICS, "run-m") as ce,
        ):
            ce.run(ce.job())
    finally:
        arm.vms.mirrors_reachable = True
    message = str(failed.value)
    assert "distribution's mirrors" in message and "ce_gallery_image" in message
    assert "status: error" in message and "Temporary failure resolving 'azure.archive.ubuntu.com'" in message
    assert "missing:  python3-guestfs python3-hivex" in message
    assert tagged(arm) == []


def test_a_prebuilt_gallery_image_needs_no_custom_data(arm, azure_settings, source_disk) -> None:  # type: ignore[no-untyped-def]
    image = ("/subscriptions/00000000-0000-4000-8000-0000000000cc/resourceGroups/rg-vdi/providers/"
             "Microsoft.Compute/galleries/ce/images/imageport-ce")  # fmt: skip
    backend = AzureBackend(session(azure_settings, ce_gallery_image=image))
    arm.vms.mirrors_reachable = False  # a prebuilt image needs no mirrors
    try:
        with (
            pytest.raises(EngineError, match="without a result"),  # the agent started (the packages are there)
            compositing_engine(backend, AzureSource("rg-vdi", source_disk), AgentMode.DIAGNOSTICS, "run-g") as ce,
        ):
            (vm,) = arm.vms.vms.values()
            profile = vm["doc"]["properties"]
            assert profile["storageProfile"]["imageReference"] == {"id": image}
            assert "customData" not in profile["osProfile"]
            ce.run(ce.job(simulate="crash"))  # then died: no appliance launch needed to prove it
    finally:
        arm.vms.mirrors_reachable = True
    assert tagged(arm) == []


def test_the_ce_runs_nothing_whose_digest_differs_from_the_job(arm, azure_settings, source_disk) -> None:  # type: ignore[no-untyped-def]
    backend = AzureBackend(session(azure_settings))
    with (
        pytest.raises(BundleError, match="does not have the sha256 recorded in the job; it was not run"),
        compositing_engine(backend, AzureSource("rg-vdi", source_disk), AgentMode.DIAGNOSTICS, "run-t") as ce,
    ):
        engine = ce.provisioned.engine
        tampered = arm.blobs.get_container_client("imageport-ce").get_blob_client(engine.bundle_blob)
        tampered.upload_blob(b"#!/bin/sh\necho owned\n", overwrite=True)  # someone swapped the blob
        ce.run(ce.job())
    assert tagged(arm) == []


def test_an_old_bundle_and_this_orchestrator_refuse_each_other_in_one_line(  # type: ignore[no-untyped-def]
    arm, azure_settings, source_disk, tmp_path: Path
) -> None:
    """A bundle of a release before protocol 1: it answers without a protocol, and the orchestrator refuses it."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "__main__.py").write_text(
        "import json, sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "p.with_suffix('.result.json').write_text(json.dumps({'ok': True, 'mode': 'diagnostics', 'exit_code': 0}))\n"
    )
    zipapp.create_archive(old, tmp_path / "old.pyz")
    path = tmp_path / "old.pyz"
    bundle = AgentBundle(path, hashlib.sha256(path.read_bytes()).hexdigest(), "0.0.9", 0)
    backend = AzureBackend(session(azure_settings), bundle=bundle)
    with (
        pytest.raises(ProtocolMismatch) as refused,
        compositing_engine(backend, AzureSource("rg-vdi", source_disk), AgentMode.DIAGNOSTICS, "run-old") as ce,
    ):
        ce.run(ce.job())
    message = str(refused.value)
    assert "\n" not in message
    assert "speaks no protocol version (a release before protocol 1), this orchestrator speaks protocol 3" in message
    assert tagged(arm) == []


# --- posture: the stand-in refuses what Azure Policy would (403 RequestDisallowedByPolicy) ---------------------

RG = f"/subscriptions/{ARM_SUBSCRIPTION}/resourceGroups/rg-vdi"
SUBNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet-ce/subnets/default"
TAGS = {"created-by": "imageport", "imageport-run": "run-p", "imageport-expires": "2099-01-01T00:00:00+00:00"}
DES = f"{RG}/providers/Microsoft.Compute/diskEncryptionSets/des-vdi"


def put(backend: AzureBackend, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    url = f"{RG}/providers/{path}?api-version=2024-07-01"
    response = backend.session.compute().send_request(HttpRequest("PUT", url, json=body))
    return response.status_code, response.json()


def nic(subnet: str = SUBNET, tags: dict[str, str] = TAGS, public_ip: bool = False) -> dict[str, Any]:
    ip: dict[str, Any] = {"subnet": {"id": subnet}}
    if public_ip:
        ip["publicIPAddress"] = {"id": f"{RG}/providers/Microsoft.Network/publicIPAddresses/pip-1"}
    configs = [{"name": "c", "properties": ip}]
    return {"location": "westeurope", "tags": tags, "properties": {"ipConfigurations": configs}}


def assert_denied(reply: tuple[int, dict[str, Any]], target: str, policy: str) -> None:
    status, body = reply
    assert status == 403, body
    assert body["error"]["code"] == "RequestDisallowedByPolicy" and body["error"]["target"] == target
    assert policy in body["error"]["additionalInfo"][0]["info"]["policyAssignmentName"]


@pytest.fixture()
def pb(arm, azure_settings) -> AzureBackend:
    """An Azure CE backend on the stand-in, for the posture tests."""  # type: ignore[no-untyped-def]
    return AzureBackend(session(azure_settings))


def test_nics_without_public_ip_on_the_connectors_subnet_and_tagged(arm, pb) -> None:  # type: ignore[no-untyped-def]
    path = "Microsoft.Network/networkInterfaces/nic-p"
    assert_denied(put(pb, path, nic(public_ip=True)), "nic-p", "should not have public IPs")
    other = SUBNET.replace("vnet-ce/subnets/default", "vnet-prod/subnets/servers")
    assert_denied(put(pb, path, nic(subnet=other)), "nic-p", "approved subnets")
    assert_denied(put(pb, path, nic(tags={"created-by": "imageport"})), "nic-p", "Require tags")
    assert "rg-vdi/nic-p" not in arm.vms.nics  # nothing was created by a refused request


def test_vms_without_managed_identity_and_tagged(arm, pb) -> None:  # type: ignore[no-untyped-def]
    path = "Microsoft.Compute/virtualMachines/vm-p"
    body = {"location": "westeurope", "tags": TAGS, "properties": {}}
    for identity in ({"type": "SystemAssigned"}, {"type": "UserAssigned", "userAssignedIdentities": {"x": {}}}):
        assert_denied(put(pb, path, {**body, "identity": identity}), "vm-p", "no managed identity")
    assert_denied(put(pb, path, {**body, "tags": {}}), "vm-p", "Require tags")
    assert "rg-vdi/vm-p" not in arm.vms.vms


def test_a_disk_copy_is_encrypted_as_its_source(arm, pb, source_disk) -> None:  # type: ignore[no-untyped-def]
    source = arm.disks[f"rg-vdi/{source_disk}"]
    source["encryption"] = {"type": "EncryptionAtRestWithCustomerKey", "diskEncryptionSetId": DES}
    try:
        creation = {"createOption": "Copy", "sourceResourceId": f"{RG}/providers/Microsoft.Compute/disks/gold"}
        copy = {"location": "westeurope", "tags": TAGS, "properties": {"creationData": creation}}
        assert_denied(put(pb, "Microsoft.Compute/disks/copy-p", copy), "copy-p", "encrypted as their source")
        # The CE's copy carries the source's disk encryption set, so it is allowed.
        with compositing_engine(pb, AzureSource("rg-vdi", source_disk), AgentMode.DIAGNOSTICS, "run-enc") as ce:
            copied = arm.disks[f"rg-vdi/{ce.provisioned.engine.vm}-disk"]
            assert copied["encryption"] == source["encryption"]
    finally:
        source.pop("encryption")
    assert tagged(arm) == []


def test_the_backend_refuses_a_policy_denial_as_access_denied(arm, pb, source_disk, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A regression that put the CE on another subnet is refused at the NIC, and leaves nothing behind."""
    real = vms.subnet_id
    monkeypatch.setattr(vms, "subnet_id", lambda s: real(s).replace("vnet-ce", "vnet-elsewhere"))
    with (
        pytest.raises(PlatformAccessDenied, match="RequestDisallowedByPolicy"),
        compositing_engine(pb, AzureSource("rg-vdi", source_disk), AgentMode.DIAGNOSTICS, "run-pol"),
    ):
        pass
    assert tagged(arm) == []


def test_the_reaper_removes_ce_blobs_a_dead_run_left(arm, azure_settings) -> None:  # type: ignore[no-untyped-def]
    backend = AzureBackend(session(azure_settings))
    storage = backend.storage()
    storage.ensure_container()
    storage.upload("imageport-ce-x/job-1.json", b"{}", CeTags.for_run("run-dead", "prepare", -1).as_dict())
    storage.upload("not-ours.bin", b"x", {})
    report = reap([backend], is_live=lambda run: False, run_id=None)
    assert "azure azure-blob imageport-ce-x/job-1.json (run run-dead)" in report.deleted
    assert ce_blobs(arm) == ["not-ours.bin"]
    storage.delete("not-ours.bin")
