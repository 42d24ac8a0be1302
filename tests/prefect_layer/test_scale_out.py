"""Scale-out as docs/operations.md describes it, run for real: a Prefect server on PostgreSQL, two process
workers on hosts of their own (network namespaces), shared result storage (tests/infra/scale_out.py).

Eight small PVS -> MCS ports (a vDisk on the Samba share -> a local-platform disk, prepared on a local CE)
are started at once through the REST API; every run completes on one of the two workers, every output's
content hash is checked against the disk on the platform, the connector's CE slot limit (2) holds across
both workers as the platform sees it (CE work directories alive at once), and no CE is left. A completed
port re-run on the *other* worker reuses both stages from the shared storage.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from blocks.registry import delete_connector, save_connector
from imageport.disks.convert import hash_disk
from imageport.disks.local_files import LOCAL
from imageport.engine.local import CE_DIR
from imageport.models import DiskFormat
from imageport.results import StageResult
from imageport.storage.smb_files import SmbFileSystem
from imageport.transfer.copy import copy_image
from tests.infra.configs import samba_share

pytestmark = [pytest.mark.integration, pytest.mark.guestfs]
PORTS = 8
CE_LIMIT = 2


class CeWatch:
    """The most CEs alive at once on the local platform: its CE work directories, seen from the platform side."""

    def __init__(self, root: Path) -> None:
        self.dir = root / CE_DIR
        self.most = 0
        self.seen: set[str] = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def alive(self) -> list[str]:
        try:
            return [p.name for p in self.dir.iterdir() if p.is_dir()]
        except FileNotFoundError:
            return []

    def _watch(self) -> None:
        while not self.done.is_set():
            alive = self.alive()
            self.seen.update(alive)
            self.most = max(self.most, len(alive))
            time.sleep(0.02)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def stage_results(topology: Any, run_id: str) -> dict[str, StageResult]:
    """A run's stage results as its target's chain returned them (named by their references, ``reused`` set),
    read back from the shared result storage the way Prefect reads them."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with topology.settings(), get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(run_id)])))
        results = [run.state.result() for run in runs if run.state is not None and run.state.is_completed()]
    located = [stage for r in results if isinstance(r, list) for stage in r if isinstance(stage, StageResult)]
    return {stage.stage.value: stage for stage in located}


def worker_of(run: dict[str, Any]) -> str:
    """The worker that ran it: Prefect labels the run with it (``prefect.worker.name``)."""
    return str(run["labels"].get("prefect.worker.name", "?"))


@pytest.fixture(scope="module")
def batch(scale_out_lab, samba, windows_disks, tmp_path_factory):  # type: ignore[no-untyped-def]
    """The connectors every worker sees (blocks on the scale-out server) and the vDisk on the share."""
    tag = uuid.uuid4().hex[:8]
    root = tmp_path_factory.mktemp("scale-out-platform")
    share = samba_share(samba, base_path=f"scale-{tag}")
    names = {"share": f"so-share-{tag}", "local": f"so-local-{tag}"}
    vdisk = root.parent / f"gold-{tag}.vhdx"
    copy_image(str(windows_disks["mbr"]), LOCAL, str(vdisk), LOCAL, DiskFormat.VHDX)
    with scale_out_lab.settings():
        save_connector("fileshare", names["share"], {**share.model_dump(), "password": samba.info["password"]})
        save_connector("local", names["local"], {"root": str(root), "ce_max_concurrent": CE_LIMIT})
        with share.build() as session:
            session.makedirs("vdisks")
        smb = SmbFileSystem(share.build())
        try:
            copy_image(str(vdisk), LOCAL, "vdisks/gold.vhdx", smb, DiskFormat.VHDX)
        finally:
            smb.close()
        try:
            yield {"root": root, "names": names, "source_hash": hash_disk(vdisk).content_hash}
        finally:
            for name in names.values():
                delete_connector(name)


def spec(batch: dict[str, Any], i: int) -> dict[str, Any]:
    share, local = batch["names"]["share"], batch["names"]["local"]
    return {"workflow": "pvs-to-mcs",
            "source": {"kind": "share", "connector": share, "path": "vdisks/gold.vhdx"},
            "staging": {"kind": "share", "connector": share, "path": f"staging/unused-{i}.vhdx"},
            "targets": [{"disk": {"kind": "local", "connector": local, "path": f"port-{i}/gold.vhdx"}}]}  # fmt: skip


def test_eight_ports_at_once_on_two_workers_hold_the_ce_limit_and_a_rerun_elsewhere_reuses_the_stages(
    scale_out_lab, batch  # type: ignore[no-untyped-def]
) -> None:
    topology, root = scale_out_lab, batch["root"]
    watch = CeWatch(root)
    try:
        ids = [topology.start_run("pvs-to-mcs", "pvs-to-mcs", {"spec": spec(batch, i)}) for i in range(PORTS)]
        ended = topology.wait(ids, timeout=1800)
    finally:
        watch.stop()
    assert {run["state_type"] for run in ended.values()} == {"COMPLETED"}, {
        i: (r["state_type"], r["state"]["message"]) for i, r in ended.items()
    }
    workers = {worker_of(ended[i]) for i in ids}
    assert workers == {h.name for h in topology.hosts}, workers  # both hosts took part
    # The slot limit held across both workers, as the platform saw it; every port had its CE; none is left.
    assert 1 <= watch.most <= CE_LIMIT, watch.most
    assert len(watch.seen) == PORTS
    assert watch.alive() == []
    prepared = {}
    for i, run_id in enumerate(ids):
        stages = stage_results(topology, run_id)
        upload, prepare = stages["upload"], stages["prepare"]
        assert upload.content_hash == batch["source_hash"] == hash_disk(root / f"port-{i}/gold.vhdx").content_hash
        # The local CE's agent re-reads what it changed (``verified``); the output differs from its input.
        assert prepare.verified and prepare.target.endswith(f"port-{i}/gold-prepared.vhdx")
        prepared[i] = hash_disk(root / f"port-{i}/gold-prepared.vhdx").content_hash
        assert prepared[i] != batch["source_hash"]
        assert not upload.reused and not prepare.reused
    # Port 0 again, sent to the worker that did not run it: both stages come back from the shared storage.
    first = ended[ids[0]]
    other = next(h.name for h in topology.hosts if h.name != worker_of(first))
    again = topology.start_run("pvs-to-mcs", "pvs-to-mcs", {"spec": spec(batch, 0)}, queue=other)
    (rerun,) = topology.wait([again], timeout=600).values()
    assert rerun["state_type"] == "COMPLETED", rerun["state"]
    assert worker_of(rerun) == other
    stages = stage_results(topology, again)
    assert stages["upload"].reused and stages["prepare"].reused, stages
    assert hash_disk(root / "port-0/gold-prepared.vhdx").content_hash == prepared[0]  # reused, not redone
    assert watch.alive() == []
