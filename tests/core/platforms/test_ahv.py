"""Nutanix AHV through the vendor's v4 SDKs against the Prism Central stand-in: inventory, login and TLS trust,
the export by a temporary disk image (content hash, nothing left on Prism, a dropped stream resumed), the ETag
rule on deletes, the reaper's view of a leaked image, and the CLI (connector test, listing, export)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imageport.disks.convert import hash_disk
from imageport.disks.local_files import LOCAL
from imageport.errors import InputError, PlatformAccessDenied, PlatformError, PlatformNotFound
from imageport.models import DiskFormat
from imageport.platforms.ahv.errors import translate_ahv_errors
from imageport.platforms.ahv.export import export_vm_disk, leftover_images
from imageport.platforms.ahv.inventory import find_vm, list_vms, select_disk
from imageport.platforms.ahv.session import AhvConfig
from tests.core.disks.images import MiB, make_raw
from tests.infra.prism_standin import PrismStandIn, StandInDisk, StandInVm

pytestmark = pytest.mark.integration
TAGS = {"created-by": "imageport", "imageport-run": "cli-test-1", "imageport-expires": "2000-01-01T00:00:00+00:00"}


@pytest.fixture(scope="module")
def prism(tmp_path_factory):  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("prism")
    standin = PrismStandIn(directory)
    boot = make_raw(directory / "boot.raw", 9 * MiB, runs=12, seed=7, max_run=300_000)
    data = make_raw(directory / "data.raw", 3 * MiB, runs=3, seed=8, max_run=4096)
    standin.add_vm(StandInVm("gold", [StandInDisk("SATA", 1, data), StandInDisk("SCSI", 0, boot)],
                             recovery_points=["before-patch"]))  # fmt: skip
    standin.add_vm(StandInVm("legacy", [StandInDisk("IDE", 0, data)], uefi=False, power_state="OFF"))
    standin.add_vm(StandInVm("twin", [StandInDisk("SCSI", 0, data)]))
    standin.add_vm(StandInVm("twin", [StandInDisk("SCSI", 0, data)]))
    yield standin
    standin.close()


def config(prism: PrismStandIn, **changes: object) -> AhvConfig:
    fields = {"host": "127.0.0.1", "port": prism.port, "username": prism.username, "password": prism.password,
              "ca_pem": prism.cert.read_text(), **changes}  # fmt: skip
    return AhvConfig.model_validate(fields)


def test_inventory_login_and_tls_trust(prism: PrismStandIn) -> None:
    with config(prism).build() as session:
        assert session.check() == [f"logged in to Prism Central at prism://127.0.0.1:{prism.port} as admin",
                                   "4 VMs visible"]  # fmt: skip
        vms = {v.name: v for v in list_vms(session)}
        gold = find_vm(session, "gold")
        assert gold == vms["gold"] and find_vm(session, gold.ext_id) == gold
        assert (gold.firmware, gold.power_state, gold.recovery_points) == ("uefi", "ON", ["before-patch"])
        assert [d.label for d in gold.disks] == ["scsi.0", "sata.1"]  # bus order, not the VM's own order
        assert select_disk(gold, None).capacity_bytes == 9 * MiB and select_disk(gold, "SATA.1").label == "sata.1"
        assert (vms["legacy"].firmware, vms["legacy"].power_state) == ("bios", "OFF")
        with pytest.raises(PlatformNotFound, match=r"VM gold has no disk 'scsi.7' \(it has scsi.0, sata.1\)"):
            select_disk(gold, "scsi.7")
        with pytest.raises(PlatformNotFound, match="no VM named 'nope'"):
            find_vm(session, "nope")
        with pytest.raises(Exception, match="2 VMs are named 'twin'"):
            find_vm(session, "twin")
        with pytest.raises(PlatformNotFound, match=r"not found \(VMM-20005: VM 0+-0+-0+-0+-0+ not found\)"):
            find_vm(session, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(PlatformAccessDenied, match="refused the user name or password"):
        config(prism, password="wrong-password").build().check()
    pinned = config(prism, ca_pem=None, fingerprint=prism.fingerprint).build()
    assert pinned.check()[1] == "4 VMs visible"
    wrong_pin = ":".join(["AB"] * 32)
    with pytest.raises(PlatformError, match="TLS certificate not trusted"):
        config(prism, ca_pem=None, fingerprint=wrong_pin).build().check()
    with pytest.raises(PlatformError, match="TLS certificate not trusted"):
        config(prism, ca_pem=None).build().check()  # the system CAs do not know the stand-in's
    with pytest.raises(ValueError, match="choose one of ca_pem, fingerprint or verify_tls=false"):
        config(prism, fingerprint=prism.fingerprint)


def test_export_through_a_temporary_image_leaves_nothing_and_resumes_a_dropped_stream(
    prism: PrismStandIn, tmp_path: Path
) -> None:
    prism.file_requests.clear()
    prism.drop_streams = 2
    with config(prism).build() as session:
        result = export_vm_disk(session, "gold", str(tmp_path / "gold.vhdx"), LOCAL, DiskFormat.VHDX, tags=TAGS,
                                digests=True)  # fmt: skip
    source = prism.vms[result.vm_ext_id].disks[1].path  # scsi.0
    assert result.content_hash == hash_disk(source).content_hash == hash_disk(tmp_path / "gold.vhdx").content_hash
    assert (result.disk, result.virtual_size, result.resumed_streams) == ("scsi.0", 9 * MiB, 2)
    # Each dropped part was asked again from where the stream stopped (halfway: the stand-in's drop),
    # not from its start: a request that ends where an earlier, longer one ended and starts inside it.
    spans = [tuple(map(int, r.removeprefix("bytes=").split("-"))) for r in prism.file_requests]
    dropped = [(a, b) for a, b in spans if b - a + 1 > MiB]  # the answers the stand-in may cut
    resumed = [(a, b) for a, b in spans if any(a0 < a and b0 == b for a0, b0 in dropped)]
    halfway = [any(a - a0 == (b - a0 + 1) // 2 for a0, b0 in dropped if b0 == b) for a, b in resumed]
    assert len(resumed) == 2 and all(halfway), prism.file_requests
    assert prism.images == {} and not list(prism.directory.glob("image-*"))  # the image is gone, its file too
    assert prism.drop_streams == 0


def test_a_failed_export_still_deletes_its_image(prism: PrismStandIn, tmp_path: Path) -> None:
    (tmp_path / "taken.vhdx").write_bytes(b"someone else's")
    with config(prism).build() as session, pytest.raises(Exception, match="exists"):
        export_vm_disk(session, "legacy", str(tmp_path / "taken.vhdx"), LOCAL, DiskFormat.VHDX, tags=TAGS)
    assert prism.images == {} and (tmp_path / "taken.vhdx").read_bytes() == b"someone else's"


def test_deletes_need_the_current_etag_and_leaked_images_are_found_by_their_tags(prism: PrismStandIn) -> None:
    from ntnx_vmm_py_client import Image, ImageType, VmDiskSource

    from imageport.platforms.ahv.export import NAME_PREFIX, describe_tags
    from imageport.platforms.ahv.tasks import affected, task_ext_id, wait_for_task

    with config(prism).build() as session:
        disk = find_vm(session, "legacy").disks[0]
        # The user's tags beside imageport's marks; a value that reads like a mark marks nothing.
        user = {"cost center": "vdi-7", "note": "imageport-run=someone-else created-by=imageport"}
        body = Image(name=f"{NAME_PREFIX}cli-test-1", description=describe_tags(TAGS, user), type=ImageType.DISK_IMAGE,
                     source=VmDiskSource(ext_id=disk.disk_ext_id))  # fmt: skip
        images = session.images_api()
        seen: list[int] = []
        task = wait_for_task(session, task_ext_id(images.create_image(body)), "make", progress=seen.append)
        assert seen == [50, 100] and str(task.status) == "SUCCEEDED"
        image_id = affected(task, "vmm:content:image")
        ((found_id, name, tags),) = leftover_images(session)
        assert (found_id, name, tags) == (image_id, f"{NAME_PREFIX}cli-test-1", TAGS)
        for if_match in (None, '"image-stale-0"'):
            with pytest.raises(PlatformError, match=r"HTTP 412, stale ETag: VMM-30412"), translate_ahv_errors("rm"):
                images.delete_image_by_id(image_id, **({"if_match": if_match} if if_match else {}))
    # The reaper finds the leaked image (expired, its run not live) through the AHV row of CE_HOSTS, and deletes
    # it with its current ETag.
    from imageport.adapters.registry import ce_backend
    from imageport.engine.reaper import reap

    backend = ce_backend("ahv", config(prism), "lab-pc")
    assert [(r.kind, r.id) for r in backend.list_resources()] == [("ahv-image", image_id)]
    assert reap([backend], lambda run: True).kept_live == [f"ahv ahv-image {image_id} (run cli-test-1)"]
    report = reap([backend], lambda run: False)
    assert report.deleted == [f"ahv ahv-image {image_id} (run cli-test-1)"] and report.failed == []
    with config(prism).build() as session:
        assert leftover_images(session) == [] and prism.images == {}
    # Prism takes 1000 characters of description: tags that would not fit are refused before anything is made.
    with pytest.raises(InputError, match=r"tags: on Nutanix AHV .* 1000 characters"):
        describe_tags(TAGS, {f"k{i}": "v" * 256 for i in range(6)})


def test_cli_connector_test_listing_and_export(run_cli, prism: PrismStandIn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = ["host=127.0.0.1", f"port={prism.port}", "username=admin", f"fingerprint={prism.fingerprint}"]
    created = run_cli("connector", "create", "ahv", "lab-pc", *base, stdin=prism.password + "\n")
    assert created.returncode == 0, created.stderr
    ok = run_cli("connector", "test", "lab-pc", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True, ok.stderr
    listed = run_cli("ahv", "vms", "-c", "lab-pc", "--json")
    assert listed.returncode == 0, listed.stderr
    gold = next(v for v in json.loads(listed.stdout) if v["name"] == "gold")
    assert gold["firmware"] == "uefi" and [d["label"] for d in gold["disks"]] == ["scsi.0", "sata.1"]
    out = tmp_path / "data.vhdx"
    exported = run_cli("ahv", "export", "gold", str(out), "-c", "lab-pc", "--disk", "sata.1", "--json")
    assert exported.returncode == 0, exported.stderr
    stage = json.loads(exported.stdout)
    assert stage["content_hash"] == hash_disk(prism.vms[gold["ext_id"]].disks[0].path).content_hash
    assert [r["kind"] for r in stage["removed"]] == ["ahv-image"] and prism.images == {}
    assert run_cli("connector", "create", "ahv", "lab-pc", *base, "--overwrite", stdin="not-it\n").returncode == 0
    bad = run_cli("connector", "test", "lab-pc")
    assert bad.returncode == 1 and "Prism Central refused the user name or password" in bad.stderr
    assert "not-it" not in bad.stdout + bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert run_cli("connector", "delete", "lab-pc").returncode == 0
    assert os.path.exists(out)
