"""XenServer through the vendor's SDK (XenAPI) against the pool stand-in: login, trust, failover, listing, export."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imageport.disks.convert import hash_disk
from imageport.disks.local_files import LOCAL
from imageport.errors import InputError, PlatformAccessDenied, PlatformError, PlatformNotFound
from imageport.models import DiskFormat
from imageport.platforms.xenserver.export import export_vm_disk
from imageport.platforms.xenserver.inventory import list_vms
from imageport.platforms.xenserver.snapshots import destroy_snapshot, marked_leftovers, take_snapshot
from tests.core.disks.images import MiB, make_raw
from tests.infra.configs import xapi_xenserver
from tests.infra.tcp_proxy import CuttingProxy

pytestmark = pytest.mark.integration

MARKS = {"created-by": "imageport", "imageport-run": "run-1", "imageport-stage": "export",
         "imageport-expires": "2000-01-01T00:00:00+00:00"}  # fmt: skip



@pytest.fixture(scope="module")
def vm(xapi, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A running UEFI VM with two disks (userdevice 0 and 1), the second holding 9 MiB of scattered data."""
    folder = tmp_path_factory.mktemp("xen-vm")
    disks = [make_raw(folder / "d0.raw", 2 * MiB, runs=2, seed=1), make_raw(folder / "d1.raw", 9 * MiB, runs=5, seed=2)]
    xapi.add_vm("xen-gold", disks, firmware="uefi")
    return {"disks": disks, "hash": hash_disk(disks[1], source_format=DiskFormat.RAW).content_hash}


def leftovers(xapi) -> tuple[list[str], list[str], list[str]]:  # type: ignore[no-untyped-def]
    """Snapshot VMs, snapshot VDIs and tasks the pool holds."""
    snaps = [r["name_label"] for r in xapi.of_class("VM").values() if r["is_a_snapshot"]]
    vdis = [r["name_label"] for r in xapi.of_class("VDI").values() if r["is_a_snapshot"]]
    return snaps, vdis, list(xapi.of_class("task"))


def test_check_logs_in_through_the_ca_and_logs_out(xapi) -> None:  # type: ignore[no-untyped-def]
    facts = xapi_xenserver(xapi).build().check()
    assert facts[0] == f"logged in to pool imageport-lab at xenserver://127.0.0.1:{xapi.port} as root"
    assert facts[1] == "master xs8-master, API 2.21"
    assert xapi.sessions == set()  # logged out
    assert "session.login_with_password" in xapi.calls and "session.logout" in xapi.calls


def test_a_pool_member_sends_the_login_to_the_master_with_the_pinned_fingerprint(xapi) -> None:  # type: ignore[no-untyped-def]
    facts = xapi_xenserver(xapi, host="localhost", ca_pem=None, fingerprint=xapi.fingerprint()).build().check()
    assert "localhost is a pool member; the master is 127.0.0.1" in facts


def test_wrong_password_and_wrong_fingerprint_are_refused(xapi) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PlatformAccessDenied) as info:
        xapi_xenserver(xapi, password="not-the-password").build().check()
    refused = "XenServer refused the user name or password"
    assert str(info.value) == f"login to xenserver://127.0.0.1:{xapi.port} as root: {refused}"
    other = ":".join(["AB"] * 32)
    with pytest.raises(PlatformError, match="fingerprint is not the pinned one"):
        xapi_xenserver(xapi, ca_pem=None, fingerprint=other).build().check()
    with pytest.raises(PlatformError, match="TLS certificate not trusted"):
        xapi_xenserver(xapi, ca_pem=None).build().check()  # the system CAs do not know the stand-in's


def test_listing_shows_disks_power_state_firmware_and_snapshots(xapi, vm) -> None:  # type: ignore[no-untyped-def]
    with xapi_xenserver(xapi).build() as session:
        (gold,) = [v for v in list_vms(session.api) if v.name == "xen-gold"]
        snap = take_snapshot(session.api, gold.ref, "before-patch", {})
        try:
            (gold,) = [v for v in list_vms(session.api) if v.name == "xen-gold"]
        finally:
            destroy_snapshot(session.api, snap)
    assert (gold.power_state, gold.firmware) == ("Running", "uefi")
    disks = [(d.userdevice, d.device, d.virtual_size) for d in gold.disks]
    assert disks == [("0", "xvda", 2 * MiB), ("1", "xvdb", 9 * MiB)]
    assert [name for name, _ in gold.snapshots] == ["before-patch"]
    assert leftovers(xapi) == ([], [], [])


def test_export_reads_the_snapshot_in_one_pass_and_leaves_nothing_on_the_pool(xapi, vm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with xapi_xenserver(xapi).build() as session:
        done = export_vm_disk(session, "xen-gold", str(tmp_path / "gold.vhdx"), LOCAL, marks=MARKS, disk="xvdb",
                              digests=True)  # fmt: skip
    assert done.content_hash == vm["hash"] == hash_disk(tmp_path / "gold.vhdx").content_hash
    assert done.sha256 == hashlib.sha256(vm["disks"][1].read_bytes()).hexdigest()
    assert (done.disk, done.snapshot, done.snapshot_created, done.attempts) == (
        "userdevice 1 (xvdb)", "imageport-export-run-1", True, 1)
    assert done.data_written < 9 * MiB  # holes stayed holes
    assert leftovers(xapi) == ([], [], [])
    assert [p.name for p in tmp_path.iterdir()] == ["gold.vhdx"]
    assert xapi.calls.count("task.create") == xapi.calls.count("task.destroy") >= 1


def test_a_dropped_stream_restarts_the_pass_cleanly(xapi, vm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = CuttingProxy(xapi.port, cut_after=3 * MiB, count_replies=True)
    try:
        with xapi_xenserver(xapi, port=proxy.port).build() as session:
            done = export_vm_disk(session, "xen-gold", str(tmp_path / "gold.vhdx"), LOCAL, marks=MARKS, disk="1")
    finally:
        proxy.close()
    assert proxy.cuts == 1 and done.attempts == 2
    assert done.content_hash == vm["hash"] == hash_disk(tmp_path / "gold.vhdx").content_hash
    assert leftovers(xapi) == ([], [], [])
    assert [p.name for p in tmp_path.iterdir()] == ["gold.vhdx"]


def test_a_failed_export_still_destroys_its_snapshot_and_a_killed_one_is_marked(xapi, vm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "taken.vhdx").write_bytes(b"x")
    with xapi_xenserver(xapi).build() as session:
        with pytest.raises(InputError, match=r"taken\.vhdx: exists already"):
            export_vm_disk(session, "xen-gold", str(tmp_path / "taken.vhdx"), LOCAL, marks=MARKS)
        assert leftovers(xapi)[:2] == ([], [])
        with pytest.raises(PlatformNotFound, match="no VM named 'nope'"):
            export_vm_disk(session, "nope", str(tmp_path / "x.vhdx"), LOCAL, marks=MARKS)
        # What a run killed after its snapshot leaves is found by its marks, with its VDIs.
        (gold,) = [v for v in list_vms(session.api) if v.name == "xen-gold"]
        take_snapshot(session.api, gold.ref, "imageport-export-killed", MARKS)
        found = marked_leftovers(session.api)
        for leaked in found:
            if leaked.kind == "xenserver-snapshot":
                destroy_snapshot(session.api, leaked.ref)
        assert leftovers(xapi)[:2] == ([], [])
    assert sorted(f.kind for f in found) == ["xenserver-snapshot", "xenserver-vdi", "xenserver-vdi"]
    assert all(f.marks["imageport-run"] == "run-1" for f in found)


def test_the_stand_ins_handler_checks_the_session_and_serves_a_vhd_qemu_reads(xapi, vm, qemu_img, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The stand-in itself, judged by qemu-img: ``format=vhd`` is a dynamic VHD of the VDI's bytes."""
    import subprocess

    (vdi,) = [ref for ref, r in xapi.of_class("VDI").items() if r["name_label"] == "xen-gold disk 1"]
    with xapi_xenserver(xapi).build() as session:
        response = session.http_get("/export_raw_vdi", vdi=vdi, format="vhd")
        (tmp_path / "d1.vhd").write_bytes(response.read())
        response.close()
        session.session.xenapi.session.logout()  # the handler must now refuse the stale session id
        session.session._session = "OpaqueRef:stale"
        with pytest.raises(PlatformError, match="HTTP 403"):
            session.http_get("/export_raw_vdi", vdi=vdi, format="raw")
        session.session = None
    compared = subprocess.run([qemu_img, "compare", "-f", "vpc", "-F", "raw", str(tmp_path / "d1.vhd"),
                               str(vm["disks"][1])], capture_output=True, text=True)  # fmt: skip
    assert compared.returncode == 0, compared.stdout + compared.stderr
