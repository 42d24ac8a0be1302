"""The compositing engine on vSphere, against the govmomi simulator.

The simulator cannot run guest code without Docker, so ``tests/infra/vcsim_guest.py``
plays the template's boot service: the job goes in and the result comes out
through guestinfo over the vSphere API, and the real agent works on the disk copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from imageport.disks.base import LOCAL
from imageport.engine.job import AgentMode
from imageport.engine.lifecycle import EngineTimeout, Outcome, compositing_engine
from imageport.engine.reaper import reap
from imageport.engine.vsphere import VsphereBackend, VsphereSource
from imageport.errors import EngineError
from imageport.models import PrepareOptions, TargetPlatform
from imageport.platforms.vsphere import ce_host
from imageport.platforms.vsphere.imports import import_to_datastore
from imageport.platforms.vsphere.inventory import retrieve, split_datastore_path
from tests.infra.vcsim_guest import GuestStandIn


@pytest.fixture(scope="module")
def session(ce_session_factory):  # type: ignore[no-untyped-def]
    yield from ce_session_factory()


@pytest.fixture(scope="module")
def guest(session) -> Iterator[GuestStandIn]:  # type: ignore[no-untyped-def]
    stand_in = GuestStandIn(session.config.build())  # its own vCenter session, as a guest would have
    yield stand_in
    stand_in.close()


def local_file(session, datastore_path: str) -> Path:  # type: ignore[no-untyped-def]
    from pyVmomi import vim

    dirs = {p["name"]: p["info.url"] for _, p in retrieve(session.si, None, ["name", "info.url"], vim.Datastore)}
    datastore, path = split_datastore_path(datastore_path)
    local = Path(dirs[datastore]) / path
    return local.with_name(local.stem + "-flat.vmdk")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_prepare_on_a_vsphere_ce_then_nothing_is_left(session, guest, windows_disks) -> None:  # type: ignore[no-untyped-def]
    disk = import_to_datastore(session, str(windows_disks["gpt"]), LOCAL, "LocalDS_0", "gold-ce", "gold").disk
    source_file = local_file(session, disk)
    before = sha256(source_file)
    output = "[LocalDS_0] gold-ce/gold-prepared.vmdk"
    outcome = Outcome()
    backend = VsphereBackend(session)
    with compositing_engine(backend, VsphereSource(disk, output), AgentMode.PREPARE, "run-vs", outcome=outcome) as ce:
        (vm,) = ce_host.list_ce_vms(session)
        assert vm.run_id == "run-vs" and vm.stage == "prepare"
        result = ce.run(ce.job(target_platform=TargetPlatform.VSPHERE, prepare=PrepareOptions(enable_rdp=True)))
    assert result.ok and result.result["verified"] is True and result.result["applied"] > 0
    assert outcome.output == output
    assert {r.kind for r in outcome.created} == {"vsphere-vm", "vsphere-folder", "vsphere-disk", "vsphere-attachment"}
    assert ce_host.list_ce_vms(session) == []
    assert sha256(source_file) == before
    assert sha256(local_file(session, output)) != before
    assert not session.datastore_files("LocalDS_0").isfile(f"{vm.name}-work/{vm.name}-disk.vmdk")


def test_hang_past_timeout_and_a_crash_leave_nothing_and_reap_takes_a_kept_ce(session, guest, windows_disks) -> None:  # type: ignore[no-untyped-def]
    disk = import_to_datastore(session, str(windows_disks["mbr"]), LOCAL, "LocalDS_0", "mbr-ce", "mbr").disk
    before = sha256(local_file(session, disk))
    backend = VsphereBackend(session)
    with (
        pytest.raises(EngineTimeout, match="outlived its 3 s timeout"),
        compositing_engine(backend, VsphereSource(disk), AgentMode.DIAGNOSTICS, "run-h", timeout_s=3) as ce,
    ):
        ce.run(ce.job(simulate="hang"))
    assert ce_host.list_ce_vms(session) == []
    with (
        pytest.raises(EngineError, match="without a result"),
        compositing_engine(backend, VsphereSource(disk), AgentMode.DIAGNOSTICS, "run-c") as ce,
    ):
        ce.run(ce.job(simulate="crash"))
    assert ce_host.list_ce_vms(session) == []
    with (
        pytest.raises(EngineError, match="without a result"),
        compositing_engine(backend, VsphereSource(disk), AgentMode.DIAGNOSTICS, "run-k", keep_on_failure=True) as ce,
    ):
        ce.run(ce.job(simulate="crash"))
    (kept,) = ce_host.list_ce_vms(session)
    assert reap([backend], is_live=lambda run: True, run_id=None).deleted == []
    report = reap([backend], is_live=lambda run: False, run_id="run-k")
    assert report.deleted == [f"vsphere vsphere-vm {kept.name} (run run-k)"]
    assert ce_host.list_ce_vms(session) == [] and sha256(local_file(session, disk)) == before
    assert not guest.agents or all(a.poll() is not None for a in guest.agents)
