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


def test_a_damaged_descriptor_is_refused_by_every_command_and_from_states_the_format(
    imageport_bin: str, tmp_path: Path
) -> None:
    """Issue 14.4: one flipped bit in '# Disk DescriptorFile' made 'disk check' say 'ok ... raw, 512
    allocated bytes' and 'copy' write a 512-byte VHDX while qemu-img read a 12 MiB VMDK."""
    raw = make_raw(tmp_path / "src.raw", 12 * MiB, runs=3, seed=14, max_run=MiB)
    desc = tmp_path / "disk.vmdk"
    made = subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", str(raw), str(desc)],
        capture_output=True,
    )
    assert made.returncode == 0, made.stderr
    data = bytearray(desc.read_bytes())
    data[2] ^= 0x04  # '# Disk' -> '# @isk'
    desc.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    for args in (
        ("disk", "check", str(desc)),
        ("disk", "info", str(desc)),
        ("disk", "hash", str(desc)),
        ("copy", str(desc), str(out / "copy.vhdx")),
        ("publish", str(desc), str(out), "--name", "gold"),
        ("prepare", str(desc), "--target", "azure", "--output", str(out / "prep.vhdx")),
    ):
        result = cli(imageport_bin, *args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "VMDK descriptor at offset 0" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert list(out.iterdir()) == []  # nothing written, not even a partial

    # --from raw: the user says it is raw, so it is read as the 512 bytes it holds
    as_raw = cli(imageport_bin, "disk", "check", str(desc), "--from", "raw", "--json")
    assert as_raw.returncode == 0 and json.loads(as_raw.stdout)["format"] == "raw", as_raw.stderr
    # a stated format that does not match the content is refused, wherever the image is read
    vhdx = tmp_path / "disk.vhdx"
    assert cli(imageport_bin, "disk", "convert", str(raw), str(vhdx), "--to", "vhdx").returncode == 0
    for args in (
        ("disk", "convert", str(vhdx), str(out / "x.raw"), "--to", "raw", "--from", "raw"),
        ("upload", str(vhdx), "sas+http://127.0.0.1:9/c/b?sig=x", "--from", "vhd"),
        ("prepare", str(vhdx), "--target", "azure", "--in-place", "--from", "vmdk-sparse"),
    ):
        result = cli(imageport_bin, *args)
        assert result.returncode == 1 and "(as stated), but the content is vhdx" in result.stderr, (args, result.stderr)
    assert list(out.iterdir()) == []
    same = cli(imageport_bin, "disk", "hash", str(vhdx), "--from", "vhdx", "--json")
    assert same.returncode == 0 and json.loads(same.stdout)["content_hash"] == content_hash_file(raw)
