"""Prepare and diagnostics on Windows-like disks built by the suite; results read back with regipy.

libguestfs runs under TCG here (~15 s a launch): the disks are built in one
launch per session and every prepare launches exactly once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from imageport.errors import GuestRefused, InputError
from imageport.guest.appliance import ensure_cachedir
from imageport.guest.plan import PrepareTarget
from imageport.guest.prepare import prepare_image
from imageport.models import HyperVGeneration, PrepareOptions, TargetPlatform
from tests.infra.windows_image import registry_dump

pytestmark = [pytest.mark.integration, pytest.mark.guestfs]


@pytest.fixture(scope="module")
def disks(windows_disks: dict[str, Path]) -> dict[str, Path]:
    return windows_disks


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy(disks: dict[str, Path], kind: str, tmp_path: Path) -> Path:
    target = tmp_path / f"{kind}-copy.img"
    shutil.copyfile(disks[kind], target)
    return target


def azure_gen1(**options: Any) -> PrepareTarget:
    return PrepareTarget(TargetPlatform.AZURE, HyperVGeneration.V1, PrepareOptions.model_validate(options))


def test_prepare_changes_exactly_the_plan_verified_independently(run_cli, disks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = disks["mbr"]
    before_sha = sha256(source)
    dry = run_cli("prepare", str(source), "--target", "azure", "--generation", "V1", "--enable-rdp",
                  "--controllers", "ddc1.corp.example ddc2.corp.example", "--domain-unjoin", "--dry-run", "--json",
                  timeout=300)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] and planned["launches"] == 1 and sha256(source) == before_sha
    changes = planned["changes"]
    assert "SYSTEM\\ControlSet001\\Services\\vmbus\\Start: 3 -> 0 REG_DWORD  [Hyper-V boot driver]" in changes
    assert any(c.startswith("SYSTEM\\ControlSet002\\Services\\VMTools\\Start: 2 -> 4") for c in changes)
    interfaces = [c for c in changes if "\\Interfaces\\" in c]
    assert interfaces == [
        f"SYSTEM\\ControlSet00{n}\\Services\\Tcpip\\Parameters\\Interfaces\\"
        "{5C1E2A3B-0000-4000-8000-000000000001}\\EnableDHCP: 0 -> 1 REG_DWORD  [DHCP]"
        for n in (1, 2)
    ]  # the static interface only

    output = tmp_path / "prepared.img"
    done = run_cli("prepare", str(source), "--output", str(output), "--target", "azure", "--generation", "V1",
                   "--enable-rdp", "--controllers", "ddc1.corp.example ddc2.corp.example", "--domain-unjoin",
                   "--json", timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["verified"] and result["changes"] == changes and sha256(source) == before_sha

    before, after = registry_dump(source, tmp_path / "b"), registry_dump(output, tmp_path / "a")
    changed = set()
    for key in before.keys() | after.keys():
        old, new = before.get(key, {}), after.get(key, {})
        changed |= {f"{key}\\{name}" for name in old.keys() | new.keys() if old.get(name) != new.get(name)}
    planned_values = {c.split(": ", 1)[0] for c in changes if not c.startswith("/")}
    assert changed == planned_values  # nothing else was touched
    cs1 = after["SYSTEM\\ControlSet001\\Services\\storvsc"]
    assert cs1["Start"] == 0 and after["SYSTEM\\ControlSet002\\Services\\partmgr\\Parameters"]["SanPolicy"] == 1
    assert "SYSTEM\\ControlSet001\\Services\\Tcpip\\Parameters\\PersistentRoutes" in after
    assert after["SYSTEM\\ControlSet001\\Services\\Tcpip\\Parameters\\PersistentRoutes"] == {}
    startup = after["SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Group Policy\\Scripts\\Startup\\0\\0"]
    assert startup["Script"] == "C:\\ProgramData\\imageport\\firstboot\\run.cmd"

    again = prepare_image(str(output), azure_gen1(enable_rdp=True, domain_unjoin=True,
                          xd_reconfigure=[{"name": "/controllers", "value": "ddc1.corp.example ddc2.corp.example"}]),
                          dry_run=True)  # fmt: skip
    assert again.changes == []  # idempotent

    report = run_cli("diagnostics", str(output), "--json", "--report", str(tmp_path / "report"), timeout=300)
    assert report.returncode == 0, report.stderr
    diag = json.loads(report.stdout)
    assert diag["firstboot_registered"]
    assert diag["firstboot_pending"] == ["10-vda-reconfigure.cmd", "30-domain-unjoin.cmd"]
    assert diag["drivers"]["vmbus"].startswith("0 (boot)") and diag["drivers"]["VMTools"].startswith("4 (disabled)")
    assert diag["facts"]["components"]["vda"] == "7.41.0.17"
    assert "10-vda-reconfigure.cmd" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("hibernated", "hibernated session"),
        ("bitlocker", "BitLocker-encrypted"),
        ("dirty", "dirty registry hive"),
        ("nowindows", "not a system disk"),
        ("faststartup", "Fast Startup is on"),
    ],
)
def test_refusals_are_clear_and_leave_the_image_untouched(disks, tmp_path: Path, kind: str, message: str) -> None:
    image = copy(disks, kind, tmp_path)
    before = sha256(image)
    with pytest.raises(GuestRefused, match=message):
        prepare_image(str(image), azure_gen1(enable_rdp=True))
    assert sha256(image) == before


def test_generation_and_firmware_must_match(disks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gpt = copy(disks, "gpt", tmp_path)
    with pytest.raises(GuestRefused, match=r"UEFI .* cannot boot as an Azure Gen1"):
        prepare_image(str(gpt), azure_gen1(), dry_run=True)
    gen2 = PrepareTarget(TargetPlatform.AZURE, HyperVGeneration.V2, PrepareOptions())
    result = prepare_image(str(gpt), gen2, dry_run=True)
    assert result.facts["firmware"] == "uefi" and result.facts["partition_style"] == "gpt" and result.changes
    with pytest.raises(ValueError, match="installers"):
        PrepareOptions.model_validate({"mcsio": "install"})


def test_the_appliance_cache_named_by_the_environment_is_created(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A missing LIBGUESTFS_CACHEDIR makes libguestfs print "set_cachedir ... No such file or directory".
    cachedir = tmp_path / "not-yet" / "guestfs"
    monkeypatch.setenv("LIBGUESTFS_CACHEDIR", str(cachedir))
    ensure_cachedir()
    assert cachedir.is_dir()


def test_an_image_of_another_md5_is_refused_before_the_appliance(run_cli, disks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = copy(disks, "mbr", tmp_path)
    before = sha256(source)
    md5 = hashlib.md5(source.read_bytes()).hexdigest()  # a raw image: its file is its virtual content
    output = tmp_path / "prepared.img"
    refused = run_cli("prepare", str(source), "--output", str(output), "--target", "azure", "--generation", "V1",
                      "--expected-md5", "0" * 32, timeout=120)  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert f"expected_md5: the disk's MD5 (of its virtual content) is {md5}, not {'0' * 32}" in refused.stderr
    assert not output.exists() and sha256(source) == before  # the copy went, the source is as it was
    with pytest.raises(InputError, match="nothing was changed"):
        prepare_image(str(source), azure_gen1(expected_md5="f" * 32), dry_run=True)
