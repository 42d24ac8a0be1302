"""``imageport disk ...`` through the installed console script: local files, and a real
Samba share addressed as smb://CONNECTOR/path."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.core.disks.images import MiB, content_hash_file, make_raw, qemu_compare


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    return make_raw(tmp_path / "gold.raw", 24 * MiB, runs=4, seed=31, max_run=2 * MiB)


def cli(imageport_bin: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([imageport_bin, *args], capture_output=True, text=True, env=env, timeout=300)


def test_info_convert_hash_check_locally(imageport_bin: str, raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "gold.vhdx"
    converted = cli(imageport_bin, "disk", "convert", str(raw), str(out), "--to", "vhdx", "--json", "--md5")
    assert converted.returncode == 0, converted.stderr
    result = json.loads(converted.stdout)
    assert result["content_hash"] == content_hash_file(raw) and len(result["md5"]) == 32
    assert qemu_compare(raw, "raw", out, "vhdx").returncode == 0

    info = json.loads(cli(imageport_bin, "disk", "info", str(out), "--json").stdout)
    assert info["format"] == "vhdx" and info["virtual_size"] == 24 * MiB and info["block_size"] == 32 * MiB

    hashed = json.loads(cli(imageport_bin, "disk", "hash", str(out), "--json", "--sha256").stdout)
    assert hashed["content_hash"] == result["content_hash"] and len(hashed["sha256"]) == 64
    assert cli(imageport_bin, "disk", "check", str(out)).returncode == 0

    again = cli(imageport_bin, "disk", "convert", str(raw), str(out), "--to", "vhdx")
    assert again.returncode == 2 and "exists already" in again.stderr
    quick = cli(imageport_bin, "disk", "convert", str(raw), str(out), "--to", "vhd", "--force", "--no-hash", "--json")
    assert quick.returncode == 0 and json.loads(quick.stdout)["content_hash"] is None
    with_plain = json.loads(
        cli(
            imageport_bin, "disk", "convert", str(raw), str(out), "--to", "vhdx", "--force", "--sha256", "--json"
        ).stdout
    )
    assert len(with_plain["sha256"]) == 64


def test_bad_images_fail_with_the_structure_named(imageport_bin: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.vhdx"
    bad.write_bytes(b"vhdxfile" + bytes(300 * 1024))
    result = cli(imageport_bin, "disk", "check", str(bad))
    assert result.returncode == 1 and "VHDX header" in result.stderr and "Traceback" not in result.stderr
    grow = cli(imageport_bin, "disk", "convert", str(bad), str(tmp_path / "x.raw"), "--to", "raw", "--size", "lots")
    assert grow.returncode == 2 and "--size 'lots'" in grow.stderr


@pytest.mark.integration
def test_convert_to_and_from_a_share_by_connector_name(run_cli, samba, raw: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    created = run_cli(
        "connector",
        "create",
        "fileshare",
        "cli-share",
        "server=127.0.0.1",
        f"port={samba.port}",
        "share=share",
        f"username={samba.info['username']}",
        "base_path=cli-images",
        stdin=samba.info["password"] + "\n",
    )
    assert created.returncode == 0, created.stderr
    assert run_cli("connector", "test", "cli-share").returncode == 0  # creates the base folder
    up = run_cli("disk", "convert", str(raw), "smb://cli-share/gold.vhdx", "--to", "vhdx", "--json")
    assert up.returncode == 0, up.stderr
    on_server = Path(samba.info["share_dir"]) / "cli-images" / "gold.vhdx"
    assert qemu_compare(raw, "raw", on_server, "vhdx").returncode == 0
    info = json.loads(run_cli("disk", "info", "smb://cli-share/gold.vhdx", "--json").stdout)
    assert info["format"] == "vhdx"
    down = run_cli("disk", "convert", "smb://cli-share/gold.vhdx", str(tmp_path / "back.vhd"), "--to", "vhd", "--json")
    assert json.loads(down.stdout)["content_hash"] == json.loads(up.stdout)["content_hash"]
    wrong = run_cli("disk", "info", "smb://no-such-connector/x.vhdx")
    assert wrong.returncode == 1 and "no connector named 'no-such-connector'" in wrong.stderr
