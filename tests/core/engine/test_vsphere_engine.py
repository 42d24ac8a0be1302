"""The compositing engine on vSphere, against the govmomi simulator.

The simulator runs no guest code, so ``tests/infra/vcsim_guest.py`` plays the
helper VM's machine: it runs the template's real boot service
(``imageport/engine/ce_boot/imageport-ce.sh``) in a clean environment with no
network, which mounts the job CD the orchestrator uploaded, checks the digests
in the guestinfo envelope, runs the agent bundle on the disk copy and writes
the result disk the orchestrator reads back from the datastore.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import zipapp
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyVmomi import vim

from imageport.disks.convert import hash_disk
from imageport.disks.local_files import LOCAL
from imageport.engine import vsphere
from imageport.engine.bundle import AgentBundle
from imageport.engine.ce_delivery import Envelope
from imageport.engine.job import PROTOCOL_VERSION, AgentMode, ExportDestination
from imageport.engine.lifecycle import Outcome, compositing_engine
from imageport.engine.reaper import reap
from imageport.engine.vsphere import JOB_KEY, VsphereBackend, VsphereSource
from imageport.errors import EngineError, EngineTimeout
from imageport.models import PrepareOptions, ShareDiskFormat, TargetPlatform
from imageport.platforms.vsphere import ce_host
from imageport.platforms.vsphere.imports import import_to_datastore
from imageport.platforms.vsphere.inventory import find_vm, retrieve, split_datastore_path
from tests.core.disks.images import MiB, make_raw
from tests.infra.vcsim_guest import GuestStandIn


@pytest.fixture(scope="module")
def session(ce_session_factory):  # type: ignore[no-untyped-def]
    yield from ce_session_factory()


@pytest.fixture(scope="module")
def guest(session) -> Iterator[GuestStandIn]:  # type: ignore[no-untyped-def]
    stand_in = GuestStandIn(session.config.build())  # its own vCenter session, as a guest would have
    yield stand_in
    stand_in.close()


def local_path(session, datastore_path: str) -> Path:  # type: ignore[no-untyped-def]
    dirs = {p["name"]: p["info.url"] for _, p in retrieve(session.si, None, ["name", "info.url"], vim.Datastore)}
    datastore, path = split_datastore_path(datastore_path)
    return Path(dirs[datastore]) / path


def local_file(session, datastore_path: str) -> Path:  # type: ignore[no-untyped-def]
    local = local_path(session, datastore_path)
    return local.with_name(local.stem + "-flat.vmdk")


def vm_names(session) -> set[str]:  # type: ignore[no-untyped-def]
    return {p["name"] for _, p in retrieve(session.si, None, ["name"], vim.VirtualMachine)}


def seen_by_the_simulator(session, name: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The live helper VM as vcsim holds it: its devices, annotation and guestinfo."""
    ((_, props),) = retrieve(session.si, [find_vm(session.si, name)],
                             ["config.hardware.device", "config.annotation", "config.extraConfig"])  # fmt: skip
    devices = props["config.hardware.device"]
    return {
        "nics": [d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)],
        "cdroms": [
            d.backing.fileName
            for d in devices
            if isinstance(d, vim.vm.device.VirtualCdrom)
            and isinstance(d.backing, vim.vm.device.VirtualCdrom.IsoBackingInfo)
        ],
        "serial_files": [
            d.backing.fileName
            for d in devices
            if isinstance(d, vim.vm.device.VirtualSerialPort)
            and isinstance(d.backing, vim.vm.device.VirtualSerialPort.FileBackingInfo)
        ],
        "annotation": props["config.annotation"],
        "guestinfo": {o.key: o.value for o in props.get("config.extraConfig") or [] if o.key.startswith("guestinfo.")},
    }


def assert_all_gone(session, name: str) -> None:  # type: ignore[no-untyped-def]
    """Nothing of helper VM ``name`` is left in the simulator: no VM, no work folder (CD, result disk, copy)."""
    assert name not in vm_names(session)
    assert not local_path(session, f"[LocalDS_0] {name}-work").exists()


@pytest.fixture(scope="module")
def small_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_raw(tmp_path_factory.mktemp("small") / "small.raw", 8 * MiB, runs=4, seed=17, max_run=MiB)


@pytest.fixture(scope="module")
def small_disk(session, small_raw: Path) -> str:  # type: ignore[no-untyped-def]
    return import_to_datastore(session, str(small_raw), LOCAL, "LocalDS_0", "small-ce", "small").disk


class PackageIndex:
    """A TCP listener standing in for a package index: the guest must never reach it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()


PROBE = """
import json, os, socket, sys
reached = True
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
except OSError as exc:
    reached = str(exc)
open({marker!r}, "w").write("ran")
probe = {{"version": sys.version.split()[0], "venv": sys.prefix != sys.base_prefix, "reached": reached,
          "env": sorted(os.environ), "path": sys.path, "argv": sys.argv}}
print("IMAGEPORT-RESULT " + json.dumps({{"protocol": {protocol}, "ok": True, "mode": "diagnostics", "exit_code": 0,
                                         "result": probe}}))
"""


def probe_bundle(tmp_path: Path, port: int) -> tuple[AgentBundle, Path]:
    """A bundle that reports how the boot service ran it (and leaves a marker when it runs)."""
    src = tmp_path / "probe"
    src.mkdir()
    marker = tmp_path / "probe-ran"
    (src / "__main__.py").write_text(PROBE.format(port=port, marker=str(marker), protocol=PROTOCOL_VERSION))
    pyz = tmp_path / "probe.pyz"
    zipapp.create_archive(src, pyz)
    return AgentBundle(pyz, hashlib.sha256(pyz.read_bytes()).hexdigest(), "probe", 1), marker


def fixed(bundle: AgentBundle) -> Callable[[], AgentBundle]:
    return lambda: bundle


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
        assert seen_by_the_simulator(session, vm.name)["nics"] == []  # the template's NIC is gone
        result = ce.run(ce.job(target_platform=TargetPlatform.VSPHERE, prepare=PrepareOptions(enable_rdp=True)))
        seen = seen_by_the_simulator(session, vm.name)
    assert result.ok and result.result["verified"] is True and result.result["applied"] > 0
    # The job went on the CD; guestinfo carries only the envelope and the result's digest.
    assert seen["cdroms"] == [f"[LocalDS_0] {vm.name}-work/{vm.name}-job.iso"]
    envelope = Envelope.parse(seen["guestinfo"][JOB_KEY])  # type: ignore[index]
    assert envelope.result_lun == 2 and len(seen["guestinfo"][JOB_KEY]) < 200  # type: ignore[index]
    assert seen["guestinfo"]["guestinfo.imageport.result"].startswith("imageport-result 1 ")  # type: ignore[index]
    assert f"run=run-vs expires={vm.expires.isoformat()}" in str(seen["annotation"])
    assert "prepare job for run run-vs" in result.log.splitlines()[0]  # the whole log came back, not a tail
    assert outcome.output == output
    assert {r.kind for r in outcome.created} == {"vsphere-vm", "vsphere-folder", "vsphere-disk", "vsphere-attachment",
                                                 "vsphere-job-cd", "vsphere-result-disk"}  # fmt: skip
    assert ce_host.list_ce_vms(session) == []
    assert_all_gone(session, vm.name)
    assert sha256(source_file) == before
    assert sha256(local_file(session, output)) != before
    tools = [(tool, args[0].split()[0]) for tool, args in guest.rpc_log]
    assert ("vmware-rpctool", "info-get") in tools and ("vmware-rpctool", "info-set") in tools
    assert ("systemctl", "poweroff") in tools


@pytest.mark.parametrize("python", ["3.10.13", "3.12.1"])
def test_an_export_job_runs_the_real_bundle_under_a_stock_python(
    session, guest, small_disk, small_raw, tmp_path, python
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "exported.vhdx"
    guest.use(python)
    try:
        with compositing_engine(VsphereBackend(session), VsphereSource(small_disk), AgentMode.EXPORT, "run-x") as ce:
            (vm,) = ce_host.list_ce_vms(session)
            result = ce.run(ce.job(export=ExportDestination(path=str(out), disk_format=ShareDiskFormat.VHDX)))
    finally:
        guest.use("system")
    assert result.ok and result.result["format"] == "vhdx"
    assert result.result["content_hash"] == hash_disk(small_raw).content_hash == hash_disk(out).content_hash
    assert result.result["sha256"] == hash_disk(small_raw, sha256=True).sha256  # of the disk's content
    assert_all_gone(session, vm.name)


@pytest.mark.parametrize("python", ["3.10.13", "3.12.1"])
def test_the_boot_service_runs_the_bundle_with_a_stock_python_and_no_network(
    session, guest, small_disk, tmp_path, python
) -> None:  # type: ignore[no-untyped-def]
    index = PackageIndex()
    bundle, marker = probe_bundle(tmp_path, index.port)
    guest.use(python)
    outcome = Outcome()
    try:
        with compositing_engine(VsphereBackend(session, fixed(bundle)), VsphereSource(small_disk),
                                AgentMode.DIAGNOSTICS, "run-probe", boot_diagnostics=True,
                                outcome=outcome) as ce:  # fmt: skip
            (vm,) = ce_host.list_ce_vms(session)
            console = seen_by_the_simulator(session, vm.name)["serial_files"]
            probe = ce.run(ce.job()).result
    finally:
        guest.use("system")
    # Boot diagnostics: a serial port written to a file in the CE's work folder, read back before teardown.
    assert console == [f"[LocalDS_0] {vm.name}-work/{vm.name}-console.log"]
    assert outcome.boot_log is not None and "imageport-ce: " in outcome.boot_log
    assert probe["version"] == python and probe["venv"] is False
    assert probe["argv"] == ["agent.pyz", "job.json"]  # python3 BUNDLE JOB.json, off the checked copies
    assert not any("PYTHON" in name or "VIRTUAL_ENV" in name for name in probe["env"])
    assert not any(".venv" in entry or "/work/" in entry for entry in probe["path"])  # nothing of this checkout
    assert probe["reached"] is not True and index.hits == 0  # no network: nothing reaches a package index
    assert marker.exists()
    assert_all_gone(session, vm.name)


def _refused_and_never_run(session, small_disk, tmp_path, run_id: str, match: str) -> None:  # type: ignore[no-untyped-def]
    """A CE whose boot service refuses the job: the error says why, the bundle never ran, nothing is left."""
    bundle, marker = probe_bundle(tmp_path, PackageIndex().port)
    with (
        pytest.raises(EngineError, match=match),
        compositing_engine(
            VsphereBackend(session, fixed(bundle)), VsphereSource(small_disk), AgentMode.DIAGNOSTICS, run_id
        ) as ce,  # fmt: skip
    ):
        (vm,) = ce_host.list_ce_vms(session)
        ce.run(ce.job())
    assert not marker.exists()
    assert_all_gone(session, vm.name)


def test_a_bundle_that_does_not_match_the_envelope_is_never_run(
    session, guest, small_disk, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    real_iso = vsphere.job_iso
    monkeypatch.setattr(vsphere, "job_iso", lambda data, job: real_iso(data + b"# tampered", job))
    _refused_and_never_run(session, small_disk, tmp_path, "run-tamper",
                           "refused: the agent bundle's sha256 does not match the envelope; nothing")  # fmt: skip


def test_a_boot_protocol_the_template_does_not_speak_is_refused(
    session, guest, small_disk, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(vsphere, "BOOT_PROTOCOL", 2)
    _refused_and_never_run(session, small_disk, tmp_path, "run-proto",
                           "speaks boot protocol 1, the job came with boot protocol 2; rebuild the temp")  # fmt: skip


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
    work = local_path(session, f"[LocalDS_0] {kept.name}-work")
    assert {p.name for p in work.iterdir()} >= {f"{kept.name}-job.iso", f"{kept.name}-result-flat.vmdk"}
    assert reap([backend], is_live=lambda run: True, run_id=None).deleted == []
    report = reap([backend], is_live=lambda run: False, run_id="run-k")
    assert report.deleted == [f"vsphere vsphere-vm {kept.name} (run run-k)"]
    assert ce_host.list_ce_vms(session) == [] and sha256(local_file(session, disk)) == before
    assert_all_gone(session, kept.name)  # the reaper took its job CD and result disk with the work folder
    assert not guest.agents or all(a.poll() is not None for a in guest.agents)
