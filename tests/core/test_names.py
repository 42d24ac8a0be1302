"""One validation of vDisk names and store paths, the same in specs, the CLI and publish (issue 18, part 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageport.disks.local_files import LOCAL
from imageport.errors import InputError
from imageport.models import PortSpec, PublishSpec, ShareRef, parse_model
from imageport.names import check, store_path, vdisk_name
from imageport.platforms.pvs.publish import publish
from imageport.platforms.pvs.store import LocalStoreFolder
from tests.core.disks.images import MiB, make_raw

SOURCE = {"kind": "local", "path": "gold.vhdx"}
STORE = {"kind": "local", "path": "store"}

BAD_NAMES = [
    ("", "PVS allows 1 to 52"),
    ("x" * 53, "53 characters; PVS allows 1 to 52"),
    ("../outside/x", "only letters, digits"),
    ("/abs/path/x", "only letters, digits"),
    ("a\x00b", "only letters, digits"),
    ("Win$(Write-Host PWNED)", "only letters, digits"),
    ("CON", "reserved Windows device name"),
    ("con.txt", "reserved Windows device name"),
    ("Lpt9", "reserved Windows device name"),
    ("COM1.vhdx", "reserved Windows device name"),
    ("nul .x", "reserved Windows device name"),
    ("trailing.", "ends with a dot or a space"),
    ("trailing ", "ends with a dot or a space"),
    ("Gold.3", "ends in .<number>"),
    (" lead", "starting with a letter or digit"),
]


@pytest.mark.parametrize(("name", "rule"), BAD_NAMES)
def test_bad_vdisk_names_are_refused_by_the_spec_and_the_cli_rule_alike(name: str, rule: str) -> None:
    with pytest.raises(InputError) as spec:
        parse_model(PublishSpec, {"source": SOURCE, "store": STORE, "name": name})
    assert f"\n  name: {name[:60]!r}" in str(spec.value) and rule in str(spec.value)
    with pytest.raises(InputError) as cli:
        check("--name", name, vdisk_name)
    assert str(cli.value).startswith("--name: ") and rule in str(cli.value) and "\n" not in str(cli.value)


def test_good_vdisk_names_pass_unchanged() -> None:
    for name in ("Win11-Gold", "Gold 2024_v.a", "x" * 52, "CONSOLE", "COM10", "Gold.v3"):
        assert vdisk_name(name) == name


def test_port_spec_names_the_target_field() -> None:
    spec = {
        "workflow": "mcs-to-pvs",
        "source": {"kind": "vsphere", "connector": "vc", "vm": "gold"},
        "staging": {"kind": "share", "connector": "nas", "path": "x.vhdx"},
        "targets": [{"disk": SOURCE, "store": STORE, "vdisk_name": "Gold.2"}],
        "prepare": {"provisioning_type": "pvs"},
    }
    with pytest.raises(InputError, match=r"targets\.0\.vdisk_name: 'Gold\.2' ends in \.<number>"):
        parse_model(PortSpec, spec)


BAD_PATHS = [
    ("/etc/passwd", "is absolute"),
    ("\\\\server\\share\\x", "is absolute (or UNC)"),
    ("//server/share/x", "is absolute (or UNC)"),
    ("\\\\?\\C:\\x", "is absolute (or UNC)"),
    ("C:\\Windows\\x.vhdx", "forbids in file names (drive letters"),
    ("C:x.vhdx", "forbids in file names"),
    ("gold.vhdx:stream", "forbids in file names"),
    ("..", "'..' segments are not allowed"),
    ("a/../../b", "'..' segments are not allowed"),
    ("a\\..\\..\\b", "'..' segments are not allowed"),
    ("a\x00b", "NUL or another control character"),
    ("a\nb", "NUL or another control character"),
    ("CON/x.vhdx", "reserved Windows device name"),
    ("dir./x.vhdx", "ends with a dot or a space"),
    ("a/" + "b" * 256, "more than 255 characters"),
    ("a/" * 600, "1200 characters, more than 1024"),
]


@pytest.mark.parametrize(("path", "rule"), BAD_PATHS)
def test_paths_that_leave_their_root_are_refused_naming_the_field(path: str, rule: str) -> None:
    for kind in ("share", "local"):
        with pytest.raises(InputError) as info:
            parse_model(ShareRef if kind == "share" else PublishSpec,
                        {"kind": "share", "connector": "nas", "path": path} if kind == "share"
                        else {"source": {"kind": "local", "path": path}, "store": STORE, "name": "Gold"})  # fmt: skip
        field = "path" if kind == "share" else "source.local.path"
        assert f"\n  {field}: " in str(info.value) and rule in str(info.value), str(info.value)


def test_good_paths_are_normalized_to_forward_slashes() -> None:
    assert store_path("images\\gold.vhdx") == "images/gold.vhdx"
    assert store_path("./a//b/") == "a/b"
    assert store_path(".") == "" and store_path("") == ""  # the root; validating again changes nothing
    assert store_path("Win 11 (gold)/gold.vhdx") == "Win 11 (gold)/gold.vhdx"


def test_publish_refuses_before_writing_anything(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    image = make_raw(tmp_path / "gold.raw", 2 * MiB, runs=2, seed=1, max_run=MiB)
    options = parse_model(PublishSpec, {"source": SOURCE, "store": STORE, "name": "ok"})
    for name in ("../outside/x", str(tmp_path / "abs"), "CON", "trailing."):
        with pytest.raises(InputError, match="vDisk name"):
            publish(str(image), LOCAL, LocalStoreFolder(store), name, options)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["gold.raw", "store"]


def test_a_link_in_the_store_cannot_redirect_the_sidecars(tmp_path: Path) -> None:
    store, outside = tmp_path / "store", tmp_path / "outside.txt"
    store.mkdir()
    outside.write_text("precious\n")
    (store / "Gold.register.txt").symlink_to(outside)
    image = make_raw(tmp_path / "gold.raw", 2 * MiB, runs=2, seed=1, max_run=MiB)
    options = parse_model(PublishSpec, {"source": SOURCE, "store": STORE, "name": "Gold"})
    with pytest.raises(InputError, match="leads out of the store folder"):
        publish(str(image), LOCAL, LocalStoreFolder(store), "Gold", options)
    assert outside.read_text() == "precious\n"
    assert sorted(p.name for p in store.iterdir()) == ["Gold.register.txt"]  # no vDisk written either
