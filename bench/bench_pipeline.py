"""One read, many writes: an export streamed into its targets' uploads against export-then-upload, same data.

The data path of an MCS port without prepare: a 1 GiB virtual source disk with ~384 MiB of data,
exported as VHDX to a Samba share (the staging file), uploaded to Azurite page blobs (what an Azure
managed disk's grant is) as a fixed VHD. Sequential (``REF``): ``copy_image`` to the share, then
``upload_to_page_blob`` from the staging file per target, one after the other -- what a port did
before. Pipeline (``imageport``): ``transfer.fanout.StreamCopier``, one read of the source into the
staging copy and every target at once. One and two targets. Each is run ``ROUNDS`` times in a fresh
process; best and spread are printed, and the peak RSS of the pipeline's process.

  port-pipeline-1-target: ratio=X.XX (imageport A s, REF B s) best of N, spread S s, peak_rss=N MiB
  port-pipeline-2-targets: ...

Goal (issue 21): <= 0.6 with one target, <= 0.5 with two. Note: the source here is a local file (the
vCenter simulator's datastore files are local files served over HTTP; its read cost is not what is
being compared).
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from pathlib import Path

from measure import timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.infra.configs import samba_share
from tests.infra.services import AZURITE_ACCOUNT, AZURITE_KEY, start_azurite, start_samba

MiB = 1024 * 1024
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))

RUN = """
import json, sys, uuid
from pathlib import Path
from imageport.disks.detect import open_disk
from imageport.disks.local_files import LOCAL
from imageport.models import DiskFormat
from imageport.storage.page_blob import PageBlob
from imageport.storage.smb import SmbShareConfig
from imageport.storage.smb_files import SmbFileSystem
from imageport.transfer.copy import copy_image
from imageport.transfer.fanout import StreamCopier
from imageport.transfer.pages import upload_to_page_blob
mode, source, work = sys.argv[1], sys.argv[2], Path(sys.argv[5])
config, urls = json.loads(sys.argv[3]), json.loads(sys.argv[4])
share = SmbFileSystem(SmbShareConfig(**config).build())
staging = f"staging-{uuid.uuid4().hex[:6]}.vhdx"
def upload(url, fs, path):
    with open_disk(path, None, fs) as reader:
        return upload_to_page_blob(reader, PageBlob(url), threads=5, checkpoint_dir=work / uuid.uuid4().hex)
if mode == "sequential":
    staged = copy_image(source, LOCAL, staging, share, DiskFormat.VHDX)
    hashes = [upload(url, share, staging).content_hash for url in urls]
else:
    copier = StreamCopier([lambda opened, url=url: upload(url, *opened) for url in urls])
    staged = copier(source, LOCAL, staging, share, DiskFormat.VHDX)
    hashes = [o.result().content_hash for o in copier.outcomes]
    assert copier.stats.reads_behind == 0
assert set(hashes) == {staged.content_hash}, (hashes, staged.content_hash)
share.close()
"""


def make_source(path: Path) -> None:
    rng = random.Random(21)
    with open(path, "wb") as f:
        f.truncate(1024 * MiB)
        for i in range(96):  # 384 MiB of data in 4 MiB runs, spread over the disk
            f.seek(i * 10 * MiB)
            f.write(rng.randbytes(4 * MiB))


def blob_urls(azurite, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    import uuid
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import BlobClient, BlobSasPermissions, generate_blob_sas

    urls = []
    for _ in range(count):
        name = f"t-{uuid.uuid4().hex[:8]}.vhd"
        BlobClient.from_connection_string(azurite.info["connection_string"], "bench", name).create_page_blob(
            size=1024 * MiB + 512
        )
        sas = generate_blob_sas(AZURITE_ACCOUNT, "bench", name, account_key=AZURITE_KEY,
                                permission=BlobSasPermissions(read=True, write=True),
                                expiry=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip
        urls.append(f"{azurite.info['endpoint']}/bench/{name}?{sas}")
    return urls


def main() -> int:
    from azure.storage.blob import BlobServiceClient

    work = Path(tempfile.mkdtemp(prefix="imageport-bench-pipeline-"))
    source = work / "gold.raw"
    make_source(source)
    samba = start_samba()
    azurite = start_azurite(in_memory=False)
    try:
        BlobServiceClient.from_connection_string(azurite.info["connection_string"]).create_container("bench")
        config = samba_share(samba).model_dump(mode="json")
        config["password"] = samba.info["password"]
        for targets, name in ((1, "port-pipeline-1-target"), (2, "port-pipeline-2-targets")):
            times: dict[str, list[float]] = {"pipeline": [], "sequential": []}
            rss = 0
            for _ in range(ROUNDS):
                for mode in ("sequential", "pipeline"):
                    cmd = [sys.executable, "-c", RUN, mode, str(source), json.dumps(config),
                           json.dumps(blob_urls(azurite, targets)), str(work)]  # fmt: skip
                    seconds, peak = timed(cmd)
                    times[mode].append(seconds)
                    if mode == "pipeline":
                        rss = max(rss, peak)
            ours, ref = min(times["pipeline"]), min(times["sequential"])
            spread = max(times["pipeline"]) - ours
            print(f"{name}: ratio={ours / ref:.2f} (imageport {ours:.2f} s, REF {ref:.2f} s) best of {ROUNDS}, "
                  f"spread {spread:.2f} s (REF spread {max(times['sequential']) - ref:.2f} s), peak_rss={rss} MiB",
                  flush=True)  # fmt: skip
    finally:
        azurite.stop()
        samba.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
