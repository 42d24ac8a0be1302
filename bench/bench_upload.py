"""Upload to a page blob: imageport vs the Azure SDK's naive path, on Azurite, in one run.

Image: 4 GiB virtual with ~1 GiB of scattered data. imageport uploads the
VHDX directly (converted on the fly to a fixed VHD, sparse, 8 writes in
flight); the reference is what a script would do with the SDK: the same disk
as a fixed VHD file, ``upload_blob(blob_type="PageBlob", max_concurrency=8)``.
A second figure uploads the same data in a 32 GiB virtual disk: time should
follow the data, not the virtual size.

Azurite runs disk-backed and is restarted for every measurement (it never
gives memory back). Turns are interleaved, ``sync`` before each, the median of
``BENCH_ROUNDS`` (3) printed with the spread and the load. ``BENCH_PROFILE=DIR``
samples the 32 GiB upload with py-spy afterwards (untimed). Prints:
  upload-4GiB: ratio=X.XX (imageport A s, sdk-upload_blob B s) peak_rss imageport=N MiB
  upload-32GiB-vs-4GiB: ratio=X.XX (imageport 32 GiB A s, imageport 4 GiB B s)
  page-blob-create-32GiB-vs-4GiB: ratio=X.XX (the SDK's create + list of an empty blob, ms)
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

from measure import ROUNDS, Runs, load, measured, profile, spread_note

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datetime import UTC

from tests.infra.services import AZURITE_ACCOUNT, AZURITE_KEY, start_azurite

MiB = 1024 * 1024
GiB = 1024 * MiB

OURS = """
import sys
from pathlib import Path
from imageport.disks.detect import open_disk
from imageport.storage.page_blob import PageBlob
from imageport.transfer.pages import upload_to_page_blob
with open_disk(sys.argv[1]) as reader:
    upload_to_page_blob(reader, PageBlob(sys.argv[2]), threads=8, checkpoint_dir=Path(sys.argv[3]))
"""
NAIVE = """
import os, sys
from azure.storage.blob import BlobClient
client = BlobClient.from_connection_string(sys.argv[2], "bench", "naive.vhd")
with open(sys.argv[1], "rb") as f:
    client.upload_blob(f, blob_type="PageBlob", length=os.path.getsize(sys.argv[1]), max_concurrency=8)
"""


def make_raw(path: Path, size: int) -> None:
    rng = random.Random(7)
    with open(path, "wb") as f:
        f.truncate(size)
        written = 0
        while written < GiB:
            length = rng.randrange(1, 16) * MiB
            offset = rng.randrange(0, 4 * GiB - length) // MiB * MiB  # same data layout whatever the size
            f.seek(offset)
            f.write(os.urandom(length))
            written += length


def with_azurite(run):  # type: ignore[no-untyped-def]
    azurite = start_azurite(in_memory=False)
    try:
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(azurite.info["connection_string"]).create_container("bench")
        return run(azurite)
    finally:
        azurite.stop()


def ours(vhdx: Path, work: Path, run_cmd=measured):  # type: ignore[no-untyped-def]
    def run(azurite):  # type: ignore[no-untyped-def]
        from datetime import datetime, timedelta

        from azure.storage.blob import BlobClient, BlobSasPermissions, generate_blob_sas

        from imageport.disks.convert import output_size
        from imageport.disks.detect import open_disk
        from imageport.models import DiskFormat

        with open_disk(vhdx) as reader:
            size = output_size(DiskFormat.VHD, reader.virtual_size) + 512
        BlobClient.from_connection_string(azurite.info["connection_string"], "bench", "ours.vhd").create_page_blob(
            size=size
        )
        sas = generate_blob_sas(
            AZURITE_ACCOUNT,
            "bench",
            "ours.vhd",
            account_key=AZURITE_KEY,
            permission=BlobSasPermissions(read=True, write=True),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        url = f"{azurite.info['endpoint']}/bench/ours.vhd?{sas}"
        return run_cmd([sys.executable, "-c", OURS, str(vhdx), url, str(work / "cp")])

    return with_azurite(run)


def naive(fixed_vhd: Path):  # type: ignore[no-untyped-def]
    return with_azurite(
        lambda azurite: measured([sys.executable, "-c", NAIVE, str(fixed_vhd), azurite.info["connection_string"]])
    )


def warm(path: Path) -> None:
    """Read a file once, untimed: every run starts from a cached source, not whatever the last left."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(16 * MiB)
        while f.readinto(buf):
            pass


def create_cost(azurite) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """The SDK's own create and page-range listing of an empty 32 GiB and 4 GiB page blob (median of 5)."""
    import statistics
    import time

    from azure.storage.blob import BlobClient

    def once(size: int, name: str) -> float:
        client = BlobClient.from_connection_string(azurite.info["connection_string"], "bench", name)
        start = time.perf_counter()
        client.create_page_blob(size=size)
        list(client.list_page_ranges())
        return time.perf_counter() - start

    costs = {n: statistics.median(once(n * GiB + 512, f"c{n}-{i}.vhd") for i in range(5)) for n in (32, 4)}
    return costs[32], costs[4]


def main() -> None:
    from imageport.disks.convert import convert
    from imageport.models import DiskFormat

    work = Path(tempfile.mkdtemp(prefix="imageport-bench-upload-"))
    try:
        raw4, raw32 = work / "d4.raw", work / "d32.raw"
        make_raw(raw4, 4 * GiB)
        make_raw(raw32, 32 * GiB)
        vhdx4, vhdx32, fixed4 = work / "d4.vhdx", work / "d32.vhdx", work / "d4.vhd"
        convert(raw4, vhdx4, DiskFormat.VHDX)
        convert(raw32, vhdx32, DiskFormat.VHDX)
        convert(raw4, fixed4, DiskFormat.VHD)
        runs = {"ours4": Runs(), "naive": Runs(), "ours32": Runs()}
        turns = (("ours4", vhdx4, lambda: ours(vhdx4, work)), ("naive", fixed4, lambda: naive(fixed4)),
                 ("ours32", vhdx32, lambda: ours(vhdx32, work)))  # fmt: skip
        for _ in range(ROUNDS):  # interleaved; each starts with no dirty pages and its source in the page cache
            for name, source, measure in turns:
                os.sync()
                warm(source)
                runs[name].add(measure())
        ours4, sdk, ours32 = runs["ours4"], runs["naive"], runs["ours32"]
        print(
            f"upload-4GiB: ratio={ours4.median / sdk.median:.2f} (imageport {ours4.median:.2f} s, sdk-upload_blob "
            f"{sdk.median:.2f} s) {spread_note(ours4, sdk)} peak_rss imageport={ours4.peak} MiB",
            flush=True,
        )
        print(
            f"upload-32GiB-vs-4GiB: ratio={ours32.median / ours4.median:.2f} (imageport 32 GiB {ours32.median:.2f} s, "
            f"imageport 4 GiB {ours4.median:.2f} s) {spread_note(ours32, ours4)} peak_rss imageport={ours32.peak} MiB",
            flush=True,
        )
        create32, create4 = with_azurite(create_cost)
        print(
            f"page-blob-create-32GiB-vs-4GiB: ratio={create32 / create4:.2f} (sdk create+list 32 GiB "
            f"{create32 * 1000:.0f} ms, 4 GiB {create4 * 1000:.0f} ms): what Azurite charges for the virtual size",
            flush=True,
        )
        print(load(), flush=True)
        ours(vhdx32, work, run_cmd=lambda cmd: profile("upload-32GiB", cmd))
    finally:
        for f in work.rglob("*"):
            if f.is_file():
                f.unlink()


if __name__ == "__main__":
    main()
