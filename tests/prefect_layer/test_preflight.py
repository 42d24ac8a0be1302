"""The checks before any data moves (issue 15 part 4) on real services: the vCenter simulator (a BIOS VM), the
Azure stand-in, local connectors. Every problem at once, one line per spec field, nothing created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from blocks.registry import delete_connector, save_connector
from flows.ports import PORT_FLOWS, check_port
from imageport.disks.local_files import LOCAL
from imageport.models import PortSpec, Workflow
from imageport.platforms.vsphere.imports import create_vm_for_disk, import_to_datastore
from imageport.platforms.vsphere.inventory import describe_vm, find_vm
from tests.core.disks.images import MiB, make_partitioned, qemu_convert
from tests.infra.configs import vcsim_vsphere

pytestmark = pytest.mark.integration
VM = "pf-bios-vm"


@pytest.fixture(scope="module")
def lab(prefect_api, vcsim, arm, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A BIOS VM on the simulator (a 32 MiB MBR disk), an MBR vDisk and an empty staging folder on a local
    connector, an Azure connector on the stand-in."""
    from tests.conftest import ARM_CLIENT, ARM_SECRET, ARM_SUBSCRIPTION, ARM_TENANT

    root = tmp_path_factory.mktemp("preflight")
    mbr = make_partitioned(root / "mbr.raw", 32 * MiB, "dos")
    (root / "staging").mkdir()
    (root / "vdisks").mkdir()
    qemu_convert(mbr, root / "vdisks" / "bios.vhdx", "vhdx-dynamic")
    config = vcsim_vsphere(vcsim, datastore="LocalDS_0")
    with config.build() as session:
        disk = import_to_datastore(session, str(mbr), LOCAL, "LocalDS_0", "pf-bios", "bios").disk
        create_vm_for_disk(session, VM, disk, capacity_bytes=32 * MiB, firmware="bios")
    mbr.unlink()
    save_connector("vsphere", "pf-vc", {**config.model_dump(), "password": vcsim.info["password"]}, overwrite=True)
    save_connector("local", "pf-local", {"root": str(root)}, overwrite=True)
    save_connector("azure", "pf-az", {
        "tenant_id": ARM_TENANT, "client_id": ARM_CLIENT, "client_secret": ARM_SECRET,
        "subscription_id": ARM_SUBSCRIPTION, "resource_group": "rg-vdi", "location": "westeurope",
        "arm_endpoint": arm.url, "authority_host": arm.url,
    }, overwrite=True)  # fmt: skip
    yield {"root": root, "arm": arm, "vsphere": config}
    for name in ("pf-vc", "pf-local", "pf-az"):
        delete_connector(name)


def azure(name: str, connector: str = "pf-az") -> dict[str, str]:
    return {"kind": "azure-disk", "connector": connector, "resource_group": "rg-vdi", "name": name}


def local(path: str) -> dict[str, str]:
    return {"kind": "local", "connector": "pf-local", "path": path}


def port(workflow: str, **fields: Any) -> dict[str, Any]:
    provisioning = "pvs" if workflow.endswith("pvs") else "mcs"
    return {"workflow": workflow, "prepare": {"provisioning_type": provisioning}, **fields}


MCS = port("mcs-to-mcs", source={"kind": "vsphere", "connector": "pf-vc", "vm": VM},
           staging=local("staging/gold.vhdx"))  # fmt: skip


def created_nothing(lab: dict[str, Any], *disks: str) -> None:
    """No disk on the stand-in, no snapshot of the VM, nothing in the staging folder (not even a probe)."""
    assert not [d for d in disks if f"rg-vdi/{d}" in lab["arm"].disks]
    with lab["vsphere"].build() as session:
        si = session.connect()
        assert describe_vm(si, find_vm(si, VM)).snapshots == []
    assert list((lab["root"] / "staging").iterdir()) == []


def problems(report: Any) -> dict[str, str]:
    return {p.field: p.message for p in report.problems}


def test_check_lists_a_bios_source_for_gen2_and_a_missing_connector_at_once_and_creates_nothing(  # type: ignore[no-untyped-def]
    lab, run_cli, tmp_path: Path
) -> None:
    spec = tmp_path / "port.yaml"
    spec.write_text(yaml.safe_dump({**MCS, "targets": [{"disk": azure("pf-gen2")}, {"disk": azure("x", "pf-nope")}]}))
    done = run_cli("port", "mcs-to-mcs", "--spec", str(spec), "--check", "--json")
    assert done.returncode == 2, done.stdout + done.stderr
    report = json.loads(done.stdout)
    found = {p["field"]: p["message"] for p in report["problems"]}
    assert found["upload.hyper_v_generation"].startswith(f"V2 needs a UEFI/GPT disk; the source VM '{VM}' boots BIOS")
    assert found["targets[1].disk.connector"].startswith("no connector named 'pf-nope'")
    assert len(found) == 2, found  # everything else was checked and is fine
    assert report["summary"].endswith(", 2 problems") and len(report["checked"]) > 2
    created_nothing(lab, "pf-gen2", "x")
    # The same port as Gen1 is clean: exit 0, the table and its count (through `run`, which starts ports too).
    spec.write_text(
        yaml.safe_dump({**MCS, "targets": [{"disk": azure("pf-gen1")}], "upload": {"hyper_v_generation": "V1"}})
    )
    clean = run_cli("run", "mcs-to-mcs", "--spec", str(spec), "--check")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.rstrip().endswith("checks, 0 problems") and "staging" in clean.stdout
    created_nothing(lab, "pf-gen1")


def test_a_port_with_a_problem_fails_before_the_export_starts(lab) -> None:  # type: ignore[no-untyped-def]
    spec = PortSpec.model_validate({**MCS, "targets": [{"disk": azure("pf-started")}]})
    state = PORT_FLOWS[Workflow.MCS_TO_MCS](spec, return_state=True)
    assert state.is_failed()
    assert "upload.hyper_v_generation: V2 needs a UEFI/GPT disk" in str(state.message)
    created_nothing(lab, "pf-started")


def test_firmware_from_the_vdisk_sectors_and_a_taken_output_name(lab) -> None:  # type: ignore[no-untyped-def]
    (lab["root"] / "out").mkdir(exist_ok=True)
    (lab["root"] / "out" / "taken.vhdx").write_bytes(b"an earlier output")
    fields = port("pvs-to-mcs", source=local("vdisks/bios.vhdx"), staging=local("staging/unused.vhdx"),
                  targets=[{"disk": local("out/taken.vhdx")}, {"disk": azure("pf-p2m")}])  # fmt: skip
    found = problems(check_port(PortSpec.model_validate(fields)))
    assert found["targets[0].disk"] == (
        "local://pf-local/out/taken.vhdx exists already; set upload.overwrite to replace it"
    )
    assert found["upload.hyper_v_generation"].startswith(
        "V2 needs a UEFI/GPT disk; the source disk local://pf-local/vdisks/bios.vhdx boots BIOS"
    )  # read from the VHDX's first sectors
    assert len(found) == 2, found
    replaced = check_port(
        PortSpec.model_validate({**fields, "upload": {"overwrite": True, "hyper_v_generation": "V1"}})
    )
    assert replaced.ok, replaced.problems


def test_missing_staging_folder_and_store_and_a_missing_installer_are_named(lab) -> None:  # type: ignore[no-untyped-def]
    target = {"disk": local("m2p/gold.vhdx"), "store": local("NoStore"), "vdisk_name": "gold"}
    (lab["root"] / "installers").mkdir(exist_ok=True)
    (lab["root"] / "installers" / "readme.txt").write_text("not an installer")
    prepare = {"provisioning_type": "pvs", "misa": "install", "installers": local("installers")}
    fields = port("mcs-to-pvs", source=MCS["source"], staging=local("no-staging/gold.vhdx"),
                  upload={"hyper_v_generation": "V1"}, targets=[target], prepare=prepare)  # fmt: skip
    found = problems(check_port(PortSpec.model_validate(fields)))
    assert found["staging"] == "local://pf-local/no-staging: no such folder"
    assert found["prepare.installers"] == (
        "MCS security agent requested but local://pf-local/installers has no .exe or .msi starting with 'misa' "
        "(found: readme.txt)"
    )
    assert "NoStore: no such store folder" in found["targets[0].vdisk_name"]
    assert found["targets[0].store"] == "local://pf-local/NoStore: no such folder"
    assert len(found) == 4, found


def test_an_output_the_stage_cache_will_reuse_is_not_a_taken_name(lab) -> None:  # type: ignore[no-untyped-def]
    """A re-run of a port finds its earlier outputs in place: the stages that made them are reused, not redone."""
    from prefect import flow, task

    from imageport.models import Stage, UploadSpec
    from imageport.results import StageResult
    from tasks.caching import run_stage, stage_cached

    spec = UploadSpec.model_validate(
        {"source": local("vdisks/bios.vhdx"), "target": local("out/cached.vhdx"), "hyper_v_generation": "V1"}
    )
    image, output = spec.source, spec.target

    @task(name="pf_stage")
    def stage_task(spec: UploadSpec) -> StageResult:
        (lab["root"] / "out").mkdir(exist_ok=True)
        (lab["root"] / "out" / "cached.vhdx").write_bytes(b"made by the stage")
        return StageResult(stage=Stage.UPLOAD, source="", target="")

    assert not stage_cached(stage_task, "upload", spec, image)

    @flow(name="pf-cached")
    def once() -> None:
        run_stage(stage_task, spec, stage="upload", reads=image, writes=output)

    once()
    assert stage_cached(stage_task, "upload", spec, image)
    assert not stage_cached(stage_task, "upload", spec.model_copy(update={"threads": 7}), image)
