"""Hostile names, paths and spec files at the real ``imageport`` command (issue 18, parts 1, 2 and 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.disks.images import MiB, make_raw
from tests.core.platforms.powershell_tokens import statements

pytestmark = pytest.mark.integration


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture()
def sandbox(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(sandbox, image, empty store) — the sandbox holds nothing else, so any stray write shows."""
    box = tmp_path / "box"
    (box / "store").mkdir(parents=True)
    image = make_raw(box / "gold.raw", 2 * MiB, runs=3, seed=18, max_run=MiB // 2)
    return box, image, box / "store"


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("../outside/x", "may use only letters, digits"),
        ("/abs/path/x", "may use only letters, digits"),
        ("", "has 0 characters; PVS allows 1 to 52"),
        ("CON", "reserved Windows device name"),
        ("trailing.", "ends with a dot or a space"),
        ("Win11.2", "ends in .<number>"),
    ],
)
def test_publish_refuses_names_that_escape_the_store_or_pvs_rejects(run_cli, sandbox, name: str, rule: str) -> None:  # type: ignore[no-untyped-def]
    box, image, store = sandbox
    done = run_cli("publish", str(image), str(store), "--name", name)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: --name: {name!r}") and rule in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert files_under(box) == ["gold.raw", "store"]


def test_publish_carries_hostile_site_and_store_names_as_literals(run_cli, sandbox) -> None:  # type: ignore[no-untyped-def]
    box, image, store = sandbox
    site, pvs_store = 'Site1"; Write-Host "PWNED', "Store\u2019; Write-Host $(calc)"
    done = run_cli("publish", str(image), str(store), "--name", "Win11-Gold", "--pvs-site", site,
                   "--pvs-store", pvs_store, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    registration = (store / "Win11-Gold.register.txt").read_text()
    commands = [line for line in statements(registration) if line and line[0][0] != "comment"]
    assert commands[1] == [
        ("word", "Import-PvsDisk"), ("word", "-DiskLocatorName"), ("literal", "Win11-Gold"),
        ("word", "-StoreName"), ("literal", pvs_store), ("word", "-SiteName"), ("literal", site), ("word", "-VHDX"),
    ]  # fmt: skip
    manifest = json.loads((store / "Win11-Gold.imageport.json").read_text())
    assert manifest["registration"] == registration.rstrip("\n").split("\n")
    assert sorted(files_under(box)) == sorted(
        ["gold.raw", "store", *(f"store/Win11-Gold.{ext}" for ext in ("vhdx", "register.txt", "imageport.json"))]
    )


def test_publish_refuses_a_line_break_in_the_site(run_cli, sandbox) -> None:  # type: ignore[no-untyped-def]
    box, image, store = sandbox
    done = run_cli("publish", str(image), str(store), "--name", "Gold", "--pvs-site", "Site1\nWrite-Host PWNED")
    assert done.returncode == 2 and done.stderr.startswith("error: --pvs-site: 'Site1\\nWrite-Host PWNED'")
    assert files_under(box) == ["gold.raw", "store"]


def test_locations_that_leave_the_share_are_refused(run_cli) -> None:  # type: ignore[no-untyped-def]
    for location, rule in (("smb://nas/../etc/passwd", "'..' segments"), ("smb://nas//etc/passwd", "is absolute"),
                           ("smb://nas/C:/Windows/x.vhdx", "Windows forbids")):  # fmt: skip
        done = run_cli("disk", "info", location)
        assert done.returncode == 2 and done.stderr.startswith(f"error: location {location!r}: path: "), done.stderr
        assert rule in done.stderr and "Traceback" not in done.stderr


def test_port_spec_with_duplicate_keys_or_deep_nesting_is_refused_with_the_line(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "port.yaml"
    spec.write_text("source: {kind: local, path: a.vhdx}\nstaging: {kind: local, path: s.vhdx}\n"
                    "source: {kind: local, path: b.vhdx}\n")  # fmt: skip
    done = run_cli("port", "pvs-to-mcs", "--spec", str(spec))
    assert done.returncode == 2 and done.stderr.strip() == f"error: {spec}:3: duplicate key 'source' (first at line 1)"
    spec.write_text("targets: " + "[" * 20000 + "]" * 20000 + "\n")
    done = run_cli("port", "pvs-to-mcs", "--spec", str(spec))
    assert done.returncode == 2 and done.stderr.strip() == f"error: {spec}:1: nested more than 32 levels deep"
    spec.write_text("source: {kind: local, path: /etc/passwd}\n")
    done = run_cli("run", "publish", "--spec", str(spec))
    assert done.returncode == 2 and "source.local.path: '/etc/passwd' is absolute" in done.stderr, done.stderr


def test_finalize_refuses_what_no_helper_vm_boots_with_what_to_do(run_cli, sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`imageport finalize` and `port --finalize on`: a disk imageport cannot boot is bad input (exit 2), named with
    where its startup actions run instead, before anything is created."""
    box, image, _ = sandbox
    plain = run_cli("finalize", str(image))
    assert plain.returncode == 2 and plain.stderr.startswith(f"error: LOCATION {image}: a local image has no "
                                                             "hypervisor here"), plain.stderr  # fmt: skip
    on_vsphere = run_cli("finalize", "datastore://cli-fin-vc/DS/gold/gold-prepared.vmdk")
    assert on_vsphere.returncode == 2 and "does not boot helper VMs on vSphere yet" in on_vsphere.stderr
    off = tmp_path / "off.json"
    off.write_text(json.dumps({"disk": {"kind": "azure-disk", "connector": "cli-fin-az", "resource_group": "rg",
                                        "name": "gold-prepared"}, "enabled": "off"}))  # fmt: skip
    asked_off = run_cli("run", "finalize", "--spec", str(off), "--check", "--json")
    assert asked_off.returncode == 2, asked_off.stderr
    problems = json.loads(asked_off.stdout)["problems"]
    assert {"field": "enabled", "message": "off asks for no finalize: run it with auto or on"} in [
        {"field": p["field"], "message": p["message"]} for p in problems
    ], problems
    spec = tmp_path / "port.json"
    spec.write_text(json.dumps({
        "source": {"kind": "local", "connector": "cli-fin", "path": "gold.vhdx"},
        "staging": {"kind": "local", "connector": "cli-fin", "path": "staging.vhdx"},
        "targets": [{"disk": {"kind": "local", "connector": "cli-fin", "path": "out/gold.vhdx"}}],
    }))  # fmt: skip
    checked = run_cli("port", "pvs-to-mcs", "--spec", str(spec), "--check", "--finalize", "on", "--json")
    assert checked.returncode == 2, checked.stderr
    lines = [p["field"] + ": " + p["message"] for p in json.loads(checked.stdout)["problems"]]
    assert any(line.startswith("finalize.enabled: finalize: a local file -- a local image") for line in lines), lines
    assert files_under(box) == ["gold.raw", "store"]  # nothing written
