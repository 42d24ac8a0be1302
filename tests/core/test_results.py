"""Typed results: a real conversion becomes a StageResult in one place, and results survive JSON.

The other converters are checked where their core results are made (``test_vsphere_export``,
``test_vsphere_import_ce``, ``test_pvs_publish``, ``test_azure_disks``, ``test_page_upload``);
the prepare converter through the prepare flows (``test_prepare_flow``, ``test_engine_flows``).
"""

from __future__ import annotations

from pathlib import Path

from imageport.disks.convert import hash_disk
from imageport.disks.local_files import LOCAL
from imageport.models import DiskFormat, Stage, Workflow
from imageport.results import PortResult, StageResult, from_convert, port_result
from imageport.transfer.copy import copy_image
from tests.core.disks.images import MiB, make_raw, qemu_convert


def test_a_copy_converts_to_a_stage_result_and_a_port_result_round_trips_json(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "seed.raw", 4 * MiB, runs=3, seed=5)
    vhdx = qemu_convert(raw, tmp_path / "seed.vhdx", "vhdx-dynamic")  # made by qemu-img, read by imageport
    copied = copy_image(str(vhdx), LOCAL, str(tmp_path / "out.vhd"), LOCAL, DiskFormat.VHD, sha256=True, md5=True)
    typed = from_convert(copied, Stage.EXPORT)
    assert (typed.stage, typed.source, typed.target) == (Stage.EXPORT, str(vhdx), str(tmp_path / "out.vhd"))
    assert typed.content_hash == hash_disk(raw).content_hash == copied.content_hash
    assert typed.sha256 == copied.sha256 and typed.md5 == copied.md5 and typed.verified == "written"
    assert typed.virtual_size == 4 * MiB and 0 < typed.bytes_written == copied.data_written <= 4 * MiB
    assert typed.bytes_read == copied.source_allocated > 0
    assert [r.describe() for r in typed.created] == [f"file {tmp_path / 'out.vhd'}"] and typed.removed == []

    upload = typed.model_copy(update={"stage": Stage.UPLOAD, "source": typed.target})
    port = port_result(Workflow.PVS_TO_MCS, [typed, upload], wall=9.0, error="upload: it failed")
    assert port.stage_seconds == 2 * typed.seconds  # the stages' own seconds, summed
    again = PortResult.model_validate_json(port.model_dump_json())
    assert again == port and all(isinstance(s, StageResult) for s in again.stages)
    assert PortResult.model_validate(port.model_dump(mode="json")) == port  # what `--json` prints reads back
