"""The port artifact, a stage's artifact and the CLI's ``--json`` render from the typed results.

The results are real: two copies of a qemu-made image (an export onto the staging file, an
upload from it), converted by ``imageport.results`` and named as ``run_stage`` names them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.results import show_port, show_stage
from imageport.disks.local_files import LOCAL
from imageport.models import DiskFormat, Stage, Workflow
from imageport.results import PortResult, StageResult, from_convert, from_prepare, port_result
from imageport.transfer.copy import copy_image
from tasks.artifacts import port_table, stage_markdown
from tests.core.disks.images import MiB, make_raw, qemu_convert


@pytest.fixture()
def port(tmp_path: Path) -> PortResult:
    raw = make_raw(tmp_path / "vm.raw", 4 * MiB, runs=3, seed=23)
    vmdk = qemu_convert(raw, tmp_path / "vm.vmdk", "vmdk-sparse")
    exported = copy_image(str(vmdk), LOCAL, str(tmp_path / "staging.vhdx"), LOCAL, DiskFormat.VHDX)
    uploaded = copy_image(str(tmp_path / "staging.vhdx"), LOCAL, str(tmp_path / "target.vhd"), LOCAL, DiskFormat.VHD)
    refs = {"vm": "vsphere://vc/gold", "staging": "share://files/staging.vhdx", "target": "local://lab/target.vhd"}
    export = from_convert(exported, Stage.EXPORT).model_copy(update={"source": refs["vm"], "target": refs["staging"]})
    upload = from_convert(uploaded, Stage.UPLOAD).model_copy(
        update={"source": refs["staging"], "target": refs["target"], "reused": True, "created": []}
    )
    return port_result(Workflow.MCS_TO_MCS, [export, upload], wall=3.0, error="prepare: set prepare.overwrite")


def test_the_port_artifact_renders_hops_hashes_and_the_error(port: PortResult) -> None:
    text = port_table(port)
    rows = [line for line in text.splitlines() if line.startswith(("| export", "| upload"))]
    assert len(rows) == 2, text
    export, upload = ([c.strip() for c in row.split("|")[1:-1]] for row in rows)
    assert export[1] == "vsphere://vc/gold → share://files/staging.vhdx" and export[5] == "yes (written)"
    assert upload[0] == "upload (reused)" and upload[4] == export[4] != "-" and upload[5] == "yes"  # the hop's hash
    assert "failed after 2 stage(s)" in text and "set prepare.overwrite" in text
    assert "- upload: local://lab/target.vhd" in text.split("### Left in place")[1]  # no created: its target


def test_a_stage_artifact_and_the_cli_json_come_from_the_model(port: PortResult, capsys) -> None:  # type: ignore[no-untyped-def]
    upload = port.stages[1]
    text = stage_markdown(upload)
    assert text.startswith("## upload: share://files/staging.vhdx → local://lab/target.vhd")
    assert f"`{upload.content_hash}`" in text and "| written |" in text
    show_stage(upload, as_json=True)
    assert StageResult.model_validate_json(capsys.readouterr().out) == upload
    show_stage(upload, as_json=False)
    shown = capsys.readouterr().out
    assert f"content {upload.content_hash} (written)\n" in shown and "bytes written" in shown, shown
    show_port(port, as_json=True)
    printed = json.loads(capsys.readouterr().out)
    assert printed == port.model_dump(mode="json") and PortResult.model_validate(printed) == port
    show_port(port, as_json=False)
    table = capsys.readouterr().out
    assert "upload (reused): share://files/staging.vhdx -> local://lab/target.vhd, " in table
    assert f"{upload.content_hash} (written)" in table and "failed after 2 stage(s)" in table, table


def test_pending_startup_actions_and_the_next_step_reach_the_artifacts_and_the_cli(capsys) -> None:  # type: ignore[no-untyped-def]
    from imageport.engine.job import AgentMode, AgentResult
    from imageport.engine.lifecycle import Outcome

    installer = {"component": "pvs", "install": "install", "name": "PVS_Device_x64.exe", "size": 4096,
                 "sha256": "ab" * 32, "version": "2402.0.0.1129", "signer": "CN=Citrix"}  # fmt: skip
    agent = AgentResult(ok=True, mode=AgentMode.PREPARE, exit_code=0, result={
        "image": "lun0", "verified": True, "firstboot_actions": ["20-install-pvs.cmd"],
        "pending_actions": [{"name": "20-install-pvs.cmd", "what": "PVS target device install",
                             "installer": installer}],
    })  # fmt: skip
    prepared = from_prepare(agent, Outcome(output="rg/gold-prepared"), "rg/gold-prepared")
    stage = stage_markdown(prepared)
    assert "- `20-install-pvs.cmd`: PVS target device install — PVS_Device_x64.exe, version 2402.0.0.1129, " \
           f"signed by CN=Citrix, sha256 `{'ab' * 32}`" in stage  # fmt: skip
    assert "**Next:** 1 startup action(s) pending in the image (20-install-pvs.cmd): boot it once" in stage
    table = port_table(port_result(Workflow.PVS_TO_MCS, [prepared], wall=1.0))
    assert "**Next, for rg/gold-prepared:** 1 startup action(s) pending" in table
    show_stage(prepared, as_json=False)
    assert "next, for rg/gold-prepared: 1 startup action(s) pending" in capsys.readouterr().out.replace("\n", " ")
