"""A port's export streams into its targets' uploads (tasks/streaming.py), on real services: a local source,
a local staging file, an Azure stand-in disk (Azurite page blob) and a local target. The upload tasks complete
from their sinks; a fault in one target's sink fails that target alone; a re-run reuses the export and the
good upload from Prefect's cache and uploads the failed target from the staging file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from blocks.registry import delete_connector, save_connector
from flows.ports import _run_export, _run_upload
from imageport.disks.convert import hash_disk
from imageport.errors import ImageportError, StorageError
from imageport.models import PortSpec
from imageport.storage.page_blob import PageBlob
from tests.core.disks.images import MiB, make_raw

pytestmark = [pytest.mark.integration]


@flow(name="export-and-uploads")
def export_and_uploads(spec: PortSpec) -> list[Any]:
    """The export and upload part of a port (``flows.ports``), without prepare: each target's upload or error."""
    exported, streams = _run_export(spec, False)
    outcomes: list[Any] = [exported]
    for i in range(len(spec.targets)):
        try:
            outcomes.append(_run_upload(spec, i, spec.staging, False, streams))
        except ImageportError as exc:
            outcomes.append(exc)
    return outcomes


def test_two_targets_stream_a_failing_one_fails_alone_and_a_rerun_uploads_it_from_staging(  # type: ignore[no-untyped-def]
    prefect_api, arm, azure_settings, tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "vms").mkdir()
    source = make_raw(tmp_path / "vms" / "gold.raw", 40 * MiB, runs=8, seed=13)
    expected = hash_disk(source).content_hash
    (tmp_path / "share").mkdir()
    save_connector("local", "stream-lab", {"root": str(tmp_path)}, overwrite=True)
    save_connector("azure", "stream-az", {**azure_settings, "vnet": "vnet-ce", "subnet": "default"}, overwrite=True)
    monkeypatch.setenv("IMAGEPORT_CHECKPOINTS", str(tmp_path / "checkpoints"))
    spec = PortSpec.model_validate({
        "workflow": "mcs-to-mcs",
        "source": {"kind": "local", "connector": "stream-lab", "path": "vms/gold.raw"},
        "staging": {"kind": "local", "connector": "stream-lab", "path": "share/gold.vhdx"},
        "targets": [
            {"disk": {"kind": "azure-disk", "connector": "stream-az", "resource_group": "rg-vdi", "name": "stream-g"}},
            {"disk": {"kind": "local", "connector": "stream-lab", "path": "target/gold.vhd"}},
        ],
        "upload": {"hyper_v_generation": "V1"},
    })  # fmt: skip
    writes = {"n": 0}
    real_write = PageBlob.write

    def failing_write(self, offset, data):  # type: ignore[no-untyped-def]
        writes["n"] += 1
        if writes["n"] == 3:  # mid-stream: two pages arrived
            raise StorageError("injected: the page blob refused a write")
        return real_write(self, offset, data)

    try:
        monkeypatch.setattr(PageBlob, "write", failing_write)
        exported, on_azure, on_local = export_and_uploads(spec)
        monkeypatch.setattr(PageBlob, "write", real_write)
        assert exported.streamed and exported.content_hash == expected
        assert hash_disk(tmp_path / "share" / "gold.vhdx").content_hash == expected  # the staging copy completed
        assert isinstance(on_azure, StorageError) and "injected" in str(on_azure)
        assert on_local.streamed and on_local.content_hash == expected and not on_local.reused
        assert on_local.source == "local://stream-lab/share/gold.vhdx"  # the DAG's input: the staging file
        assert hash_disk(tmp_path / "target" / "gold.vhd").content_hash == expected
        again, azure_again, local_again = export_and_uploads(spec)
        assert again.reused and local_again.reused  # from Prefect's cache: nothing read or written again
        assert not azure_again.reused and not azure_again.streamed  # from the staging file, as before streaming
        assert azure_again.content_hash == expected and azure_again.restarted  # the stream's pages not trusted
    finally:
        delete_connector("stream-lab")
        delete_connector("stream-az")
    blob = arm.container.get_blob_client(arm._blob_name("rg-vdi", "stream-g"))
    assert blob.get_blob_properties().size == 40 * MiB + 512
