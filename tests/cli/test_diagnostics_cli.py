"""``imageport diagnostics`` on a disk named by its location: the diagnostics flow run from the CLI, and its
refusals (exit 2, one line, before anything is read or created)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blocks.registry import delete_connector, save_connector

pytestmark = [pytest.mark.integration, pytest.mark.guestfs]


def test_a_located_disk_is_reported_by_the_flow_and_bad_requests_are_refused(  # type: ignore[no-untyped-def]
    run_cli, windows_disks, tmp_path: Path
) -> None:
    shutil.copyfile(windows_disks["gpt"], tmp_path / "gold.img")
    save_connector("local", "cli-diag", {"root": str(tmp_path)}, overwrite=True)
    try:
        in_place = run_cli("diagnostics", "local://cli-diag/gold.img", "--ce-logs")
        vm_disk = run_cli("diagnostics", "vsphere://cli-diag-vc/gold-vm", "--boot-diagnostics")
        mixed = run_cli("diagnostics", "local://cli-diag/gold.img", "--report", str(tmp_path / "plain"))
        no_folder = run_cli("diagnostics", "local://cli-diag/gold.img", "--report", "local://cli-diag/none/gold")
        (tmp_path / "out").mkdir()
        done = run_cli("diagnostics", "local://cli-diag/gold.img", "--report", "local://cli-diag/out/gold", "--json")
    finally:
        delete_connector("cli-diag")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["disk"] == "local://cli-diag/gold.img" and result["engine"] is None
    assert result["report"]["facts"]["firmware"] == "uefi"
    assert result["saved"] == ["local://cli-diag/out/gold.json", "local://cli-diag/out/gold.md"]
    assert (tmp_path / "out" / "gold.md").read_text() == result["markdown"]
    # Refused before anything runs: exit 2 and one line naming what is wrong.
    assert in_place.returncode == 2 and "ce_logs: a local image is read in place" in in_place.stderr
    assert vm_disk.returncode == 2 and "is a VM's disk" in vm_disk.stderr
    assert "boot_diagnostics" not in vm_disk.stderr  # the disk is refused, not what its reader could give
    assert mixed.returncode == 2 and "name the disk and the report both as locations" in mixed.stderr
    assert no_folder.returncode == 2 and "output: " in no_folder.stderr and "none" in no_folder.stderr
    assert not (tmp_path / "plain.json").exists() and not (tmp_path / ".imageport-ce").exists()
