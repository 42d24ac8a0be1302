"""``imageport publish`` and ``imageport copy`` end to end: the real console script, the real Samba share."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.core.disks.images import MiB, make_raw, qemu_compare, qemu_convert
from tests.infra.configs import samba_share

pytestmark = pytest.mark.integration


@pytest.fixture()
def share_connector(run_cli, samba, request):  # type: ignore[no-untyped-def]
    """A file-share connector whose base folder is this test's own; yields (name, folder on the server)."""
    name = "pc-" + request.node.name.lower().replace("_", "-")[5:30].strip("-")
    created = run_cli(
        "connector", "create", "fileshare", name, "server=127.0.0.1", f"port={samba.port}", "share=share",
        f"username={samba.info['username']}", f"base_path=cli-{name}",
        stdin=samba.info["password"] + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert run_cli("connector", "test", name).returncode == 0  # creates the base folder
    share = samba_share(samba, f"cli-{name}").build()
    with share:
        share.makedirs("Store")  # as the share's user: the server's own files are not ours to create
    return name, Path(samba.info["share_dir"]) / f"cli-{name}"


def test_publish_saves_registration_then_refuses_a_second_time(run_cli, share_connector, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name, folder = share_connector
    raw = make_raw(tmp_path / "prepared.raw", 64 * MiB, runs=8, seed=2)
    image = qemu_convert(raw, tmp_path / "prepared.vhdx", "vhdx-dynamic")
    done = run_cli(
        "publish", str(image), f"smb://{name}/Store", "--name", "Win11-Gold", "--pvs-site", "Site1",
        "--pvs-store", "Store1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Import-PvsDisk -DiskLocatorName 'Win11-Gold' -StoreName 'Store1' -SiteName 'Site1' -VHDX" in done.stdout
    store = folder / "Store"
    assert sorted(os.listdir(store)) == ["Win11-Gold.imageport.json", "Win11-Gold.register.txt", "Win11-Gold.vhdx"]
    assert qemu_compare(raw, "raw", store / "Win11-Gold.vhdx", "vhdx").returncode == 0

    again = run_cli("publish", str(image), f"smb://{name}/Store", "--name", "Win11-Gold")
    assert again.returncode == 1 and "exists already" in again.stderr and "--new-version" in again.stderr
    version = run_cli("publish", str(image), f"smb://{name}/Store", "--name", "Win11-Gold", "--new-version", "--json")
    assert version.returncode == 0, version.stderr
    published = json.loads(version.stdout)
    assert published["target"] == published["details"]["file"] == "Win11-Gold.1.vhdx"
    assert published["stage"] == "publish" and published["details"]["version"] == 1

    (store / "Win11-Gold.2.lok").write_bytes(b"")  # a stale lock where version 2 would go
    locked = run_cli("publish", str(image), f"smb://{name}/Store", "--name", "Win11-Gold", "--new-version")
    assert locked.returncode == 1 and "Win11-Gold.2.lok" in locked.stderr and "Traceback" not in locked.stderr
    bad = run_cli("publish", str(image), f"smb://{name}/Store", "--name", "x" * 60)
    assert bad.returncode == 2 and "PVS allows 1 to 52" in bad.stderr


def test_publish_writes_the_share_connectors_disk_format_unless_told(run_cli, samba, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Citrix's Windows File Share "Disk Format" is the default container of a vDisk published to that share."""
    created = run_cli(
        "connector", "create", "fileshare", "pc-vhd-store", "server=127.0.0.1", f"port={samba.port}", "share=share",
        f"username={samba.info['username']}", "base_path=cli-pc-vhd-store", "disk_format=vhd",
        stdin=samba.info["password"] + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert run_cli("connector", "test", "pc-vhd-store").returncode == 0  # creates the base folder
    with samba_share(samba, "cli-pc-vhd-store").build() as share:
        share.makedirs("Store")
    raw = make_raw(tmp_path / "prepared.raw", 8 * MiB, runs=2, seed=5)
    image = qemu_convert(raw, tmp_path / "prepared.vhdx", "vhdx-dynamic")
    by_share = run_cli("publish", str(image), "smb://pc-vhd-store/Store", "--name", "ByShare", "--json")
    by_flag = run_cli("publish", str(image), "smb://pc-vhd-store/Store", "--name", "ByFlag", "--format", "vhdx")
    assert by_share.returncode == 0 and by_flag.returncode == 0, by_share.stderr + by_flag.stderr
    assert json.loads(by_share.stdout)["details"]["file"] == "ByShare.vhd"
    store = Path(samba.info["share_dir"]) / "cli-pc-vhd-store" / "Store"
    assert qemu_compare(raw, "raw", store / "ByShare.vhd", "vpc").returncode == 0  # a dynamic VHD, as the share says
    assert qemu_compare(raw, "raw", store / "ByFlag.vhdx", "vhdx").returncode == 0  # the command's own choice wins
    (tmp_path / "store").mkdir()
    local = run_cli("publish", str(image), str(tmp_path / "store"), "--name", "Local", "--json")  # no connector
    assert local.returncode == 0 and json.loads(local.stdout)["details"]["file"] == "Local.vhdx", local.stderr


def test_copy_between_stores_keeps_or_converts_the_format(run_cli, share_connector, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name, folder = share_connector
    raw = make_raw(tmp_path / "src.raw", 48 * MiB, runs=6, seed=12)
    vhdx = qemu_convert(raw, tmp_path / "src.vhdx", "vhdx-dynamic")
    up = run_cli("copy", str(vhdx), f"smb://{name}/copy.vhdx", "--json")  # keeps VHDX
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["format"] == "vhdx"
    assert qemu_compare(raw, "raw", folder / "copy.vhdx", "vhdx").returncode == 0
    down = run_cli("copy", f"smb://{name}/copy.vhdx", str(tmp_path / "back.vhd"), "--to", "vhd", "--json")
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["content_hash"] == json.loads(up.stdout)["content_hash"]
    assert qemu_compare(raw, "raw", tmp_path / "back.vhd", "vpc").returncode == 0
    exists = run_cli("copy", str(vhdx), f"smb://{name}/copy.vhdx")
    assert exists.returncode == 2 and "--force" in exists.stderr
    azure = run_cli("copy", str(vhdx), "azure-disk://c/rg/disk")
    assert azure.returncode == 2 and "imageport upload" in azure.stderr
    assert [p for p in os.listdir(folder) if "partial" in p] == []


def test_clean_a_share_folder(run_cli, samba, share_connector) -> None:  # type: ignore[no-untyped-def]
    """``imageport clean smb://CONNECTOR/folder``: a dead run's partial, sidecar and lock go; a dry run keeps them."""
    name, folder = share_connector
    share = samba_share(samba, f"cli-{name}").build()
    with share:  # what a killed copy leaves, written as the share's user
        share.write_bytes("Store/gold.vhdx.imageport-partial", b"x" * 4096)
        share.write_bytes("Store/gold.vhdx.imageport-partial.json", b"{}")
        share.write_bytes(
            "Store/gold.vhdx.imageport-lock", b'{"owner": {"host": "h", "pid": 1, "since": "t", "run": "r"}}'
        )
    listed = run_cli("clean", f"smb://{name}/Store", "--dry-run", "--json")
    assert listed.returncode == 0, listed.stderr
    states = {f["name"]: (f["state"], f["owner"]) for f in json.loads(listed.stdout)["files"]}
    assert states["gold.vhdx.imageport-partial"] == ("stale", "h, pid 1, since t")
    assert len(os.listdir(folder / "Store")) == 3
    cleaned = run_cli("clean", f"smb://{name}/Store", "--json")
    assert cleaned.returncode == 0, cleaned.stderr
    assert {f["state"] for f in json.loads(cleaned.stdout)["files"]} == {"removed"}
    assert os.listdir(folder / "Store") == []
