"""The prepare-image flow on the local platform: a verified prepared copy, the source untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from blocks.registry import delete_connector, save_connector
from flows.prepare_image import prepare_image_flow
from imageport.models import PrepareSpec
from imageport.results import PrepareDetails, StageResult
from tests.infra.signed_pe import build_pe
from tests.infra.windows_image import staged_file

pytestmark = [pytest.mark.integration, pytest.mark.guestfs]


def test_flow_prepares_a_copy_and_reports_the_changes(prefect_api: str, windows_disks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copyfile(windows_disks["mbr"], tmp_path / "gold.img")
    before = hashlib.sha256((tmp_path / "gold.img").read_bytes()).hexdigest()
    md5 = hashlib.md5((tmp_path / "gold.img").read_bytes()).hexdigest()  # a raw disk: its virtual content
    save_connector("local", "flow-guest", {"root": str(tmp_path)}, overwrite=True)
    (tmp_path / "citrix").mkdir()
    misa = build_pe(tmp_path / "citrix" / "MISA_x64.exe", version="2.1.0.7", product="MISA", signer=None)
    (tmp_path / "citrix" / "mcsio_x64.msi").write_bytes(b"an MSI package: hashed, staged, not parsed")
    try:
        spec = PrepareSpec.model_validate(
            {
                "disk": {"kind": "local", "connector": "flow-guest", "path": "gold.img"},
                "target_platform": "azure",
                "hyper_v_generation": "V1",
                "chkdsk": True,
                "misa": "install",
                "mcsio": "force",
                "installers": {"kind": "local", "connector": "flow-guest", "path": "citrix"},
                "expected_md5": md5.upper(),
            }
        )
        # Citrix's -Md5Hash: another MD5 is refused by the agent on the CE before anything is changed or kept.
        wrong = prepare_image_flow(spec.model_copy(update={"expected_md5": "0" * 32}), return_state=True)
        assert wrong.is_failed() and f"the disk's MD5 (of its virtual content) is {md5}, not {'0' * 32}" in str(
            wrong.message
        )
        assert not (tmp_path / "gold-prepared.img").exists() and not list((tmp_path / ".imageport-ce").iterdir())
        state = prepare_image_flow(spec, return_state=True)
        assert state.is_completed(), state.message
        result = state.result()
        vsphere_disk = {"kind": "vsphere", "connector": "x", "vm": "gold-vm"}
        unsupported = PrepareSpec.model_validate({**spec.model_dump(mode="json"), "disk": vsphere_disk})
        failed = prepare_image_flow(unsupported, return_state=True)
    finally:
        delete_connector("flow-guest")
    assert isinstance(result, StageResult) and isinstance(result.details, PrepareDetails)
    assert result.target.endswith("gold-prepared.img") and result.verified and result.details.launches == 1
    assert result.pending_first_boot == ["20-reinstall-mcsio.cmd", "21-install-misa.cmd", "50-chkdsk.cmd"]
    staged = {a.name: a.installer for a in result.details.pending}
    assert staged["21-install-misa.cmd"] is not None and staged["21-install-misa.cmd"].version == "2.1.0.7"
    assert staged["21-install-misa.cmd"].signer is None and staged["50-chkdsk.cmd"] is None
    assert "21-install-misa.cmd" in result.details.next_step
    # The installer in the prepared image is byte for byte the one checked (read by ntfs-3g, not libguestfs).
    assert staged_file(tmp_path / "gold-prepared.img", "MISA_x64.exe", tmp_path / "vol") == misa.read_bytes()
    assert (tmp_path / "gold-prepared.img").exists()
    assert hashlib.sha256((tmp_path / "gold.img").read_bytes()).hexdigest() == before
    # Refused by the checks before anything is created: the kind's role (the adapter table) and its connector.
    assert failed.is_failed() and "disk: a vsphere reference cannot be the source of prepare" in str(failed.message)
    assert "disk.connector: no connector named 'x'" in str(failed.message)
    # The local compositing engine did the work and left nothing behind but the output.
    assert result.removed and not list((tmp_path / ".imageport-ce").iterdir())


def test_diagnostics_flow_reports_and_saves(prefect_api: str, windows_disks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from flows.diagnostics import diagnostics_flow
    from imageport.models import DiagnosticsSpec

    shutil.copyfile(windows_disks["gpt"], tmp_path / "gpt.img")
    save_connector("local", "flow-diag", {"root": str(tmp_path)}, overwrite=True)
    try:
        spec = DiagnosticsSpec.model_validate(
            {
                "disk": {"kind": "local", "connector": "flow-diag", "path": "gpt.img"},
                "output": {"kind": "local", "connector": "flow-diag", "path": "gpt-report"},
            }
        )
        state = diagnostics_flow(spec, return_state=True)
    finally:
        delete_connector("flow-diag")
    assert state.is_completed(), state.message
    result = state.result()
    report = result.report
    assert report["facts"]["firmware"] == "uefi" and report["drivers"]["VMTools"].startswith("2 (automatic)")
    assert not report["firstboot_registered"] and result.problems == []
    assert result.engine is None and result.removed == []  # a local image is read in place: no CE, no copy
    assert result.saved == ["local://flow-diag/gpt-report.json", "local://flow-diag/gpt-report.md"]
    assert "UEFI / GPT" in (tmp_path / "gpt-report.md").read_text() == result.markdown
    assert json.loads((tmp_path / "gpt-report.json").read_text())["image"] == "local://flow-diag/gpt.img"
