"""The convert-disk flow on a local connector, against the test Prefect server; qemu-img judges."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from blocks.registry import delete_connector, save_connector
from flows.clean_outputs import clean_outputs
from flows.convert_disk import convert_disk
from imageport.models import DiskFormat, LocalRef
from tests.core.disks.images import MiB, content_hash_file, make_raw, qemu_compare


@pytest.fixture()
def images_dir(prefect_api: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    save_connector("local", "flow-images", {"root": str(tmp_path)}, overwrite=True)
    yield tmp_path
    delete_connector("flow-images")


def test_flow_converts_and_reports_the_content_hash(images_dir: Path) -> None:
    make_raw(images_dir / "gold.raw", 40 * MiB, runs=4, seed=8)
    (images_dir / "out").mkdir()
    state = convert_disk(
        LocalRef(connector="flow-images", path="gold.raw"),
        LocalRef(connector="flow-images", path="out/gold.vhdx"),
        DiskFormat.VHDX,
        return_state=True,
    )
    assert state.is_completed()
    result = state.result()
    assert result["content_hash"] == content_hash_file(images_dir / "gold.raw")
    assert qemu_compare(images_dir / "gold.raw", "raw", images_dir / "out/gold.vhdx", "vhdx").returncode == 0
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    kinds = {a.type for a in artifacts}
    assert "progress" in kinds and any(a.key == "convert-disk" for a in artifacts)


def test_bad_input_fails_fast_without_retries(images_dir: Path) -> None:
    (images_dir / "junk.vmdk").write_bytes(b"KDMV" + bytes(508))
    state = convert_disk(
        LocalRef(connector="flow-images", path="junk.vmdk"),
        LocalRef(connector="flow-images", path="x.vhdx"),
        return_state=True,
    )
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs()
    convert_runs = [t for t in task_runs if t.name.startswith("convert junk.vmdk")]
    assert convert_runs and all(t.run_count == 1 for t in convert_runs)
    assert not (images_dir / "x.vhdx").exists()
    assert [p.name for p in images_dir.iterdir() if "partial" in p.name] == []


def test_clean_flow_removes_dead_runs_leftovers(images_dir: Path) -> None:
    (images_dir / "gold.vhdx.partial-0123abcd").write_bytes(b"left by a killed convert")
    (images_dir / "gold.vhdx.imageport-lock").write_text("{}")
    (images_dir / "keep.vhdx").write_bytes(b"an output")
    report = clean_outputs(LocalRef(connector="flow-images", path="."))
    assert {f["name"]: f["state"] for f in report["files"]} == {
        "gold.vhdx.imageport-lock": "removed",
        "gold.vhdx.partial-0123abcd": "removed",
    }
    assert sorted(p.name for p in images_dir.iterdir()) == ["keep.vhdx"]
