"""A port killed mid-upload and run again: the upload (streamed from the export) resumes, and no more than one
window of chunks (the chunks in flight when it died) is sent twice."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blocks.registry import delete_connector, save_connector
from imageport.results import PortResult, UploadDetails
from imageport.transfer.plan import covered

pytestmark = [pytest.mark.integration, pytest.mark.guestfs]
MiB = 1024 * 1024
THREADS = 4
WINDOW = THREADS + 2  # chunks a page upload holds at most: in flight plus buffers being filled

RUN_PORT = """
import json, sys
from flows.ports import mcs_to_mcs
from imageport.models import PortSpec
result = mcs_to_mcs(PortSpec.model_validate(json.loads(sys.argv[1])))
assert type(result).__name__ == "PortResult", type(result)
print("RESULT " + result.model_dump_json(), flush=True)
"""


def test_killed_mid_upload_then_rerun_resumes_the_streamed_upload_and_resends_at_most_one_window(  # type: ignore[no-untyped-def]
    prefect_api, arm, azure_settings, windows_disks, cli_env, tmp_path: Path
) -> None:
    image = tmp_path / "vms" / "gold.img"
    image.parent.mkdir()
    shutil.copyfile(windows_disks["mbr"], image)
    rng = random.Random(7)
    with open(image, "r+b") as f:  # data past the partition: enough that the upload takes a while
        f.truncate(1024 * MiB)
        f.seek(512 * MiB)
        for _ in range(48):
            f.write(rng.randbytes(4 * MiB))
    (tmp_path / "share").mkdir()
    save_connector("local", "resume-lab", {"root": str(tmp_path)}, overwrite=True)
    save_connector("azure", "resume-az", {**azure_settings, "vnet": "vnet-ce", "subnet": "default"}, overwrite=True)
    spec = {
        "workflow": "mcs-to-mcs",
        "source": {"kind": "local", "connector": "resume-lab", "path": "vms/gold.img"},
        "staging": {"kind": "local", "connector": "resume-lab", "path": "share/gold.vhdx"},
        "targets": [
            {
                "disk": {
                    "kind": "azure-disk",
                    "connector": "resume-az",
                    "resource_group": "rg-vdi",
                    "name": "resume-gold",
                }
            }
        ],
        "upload": {"threads": THREADS, "hyper_v_generation": "V1"},
    }
    env = {**cli_env, "IMAGEPORT_CHECKPOINTS": str(tmp_path / "checkpoints")}
    command = [sys.executable, "-c", RUN_PORT, json.dumps(spec)]
    blob = arm.container.get_blob_client(arm._blob_name("rg-vdi", "resume-gold"))
    try:
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 300
        arrived: set[int] = set()
        while len(arrived) < 16:
            assert first.poll() is None, "the first run ended before it could be killed"
            assert time.monotonic() < deadline, "the upload never got going"
            if "rg-vdi/resume-gold" in arm.disks and arm.disks["rg-vdi/resume-gold"]["state"] == "ActiveUpload":
                arrived = covered(_ranges(blob), 1024 * MiB + 512)
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # the orchestrating process dies mid-upload
        first.wait()
        time.sleep(0.5)
        landed = covered(_ranges(blob), 1024 * MiB + 512)  # what reached the disk before it died
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    finally:
        delete_connector("resume-lab")
        delete_connector("resume-az")
    (line,) = [ln for ln in second.stdout.splitlines() if ln.startswith("RESULT ")]
    stages = {s.stage.value: s for s in PortResult.model_validate_json(line[len("RESULT ") :]).stages}
    # The upload streams from the export (one read of the source), so the kill interrupted both: the re-run
    # exports again and streams again, and the page blob resumes by its own checkpoint (the source's fingerprint).
    assert stages["export"].reused is False and stages["export"].streamed
    assert stages["export"].content_hash == stages["upload"].content_hash and stages["export"].bytes_written
    upload, details = stages["upload"], stages["upload"].details
    assert isinstance(details, UploadDetails) and upload.streamed
    assert upload.reused is False and upload.resumed is True and details.resumed_disk is True
    data_chunks = details.chunks_sent + details.chunks_resumed
    missing = data_chunks - len(landed)  # the blob holds pages only where data was written
    assert details.chunks_resumed > 0
    assert details.chunks_sent <= missing + WINDOW, (upload, len(landed))
    assert stages["prepare"].verified


def _ranges(blob):  # type: ignore[no-untyped-def]
    from imageport.disks.extents import Extent

    return [Extent(r.start, r.end + 1 - r.start) for r in blob.list_page_ranges()]
