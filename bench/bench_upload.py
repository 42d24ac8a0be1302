"""Upload to a page blob: imageport vs the Azure SDK's naive path, on Azurite, in one run.

Image: 4 GiB virtual with ~1 GiB of scattered data. imageport uploads the
VHDX directly (converted on the fly to a fixed VHD, sparse, 8 writes in
flight); the reference is what a script would do with the SDK: the same disk
as a fixed VHD file, ``upload_blob(blob_type="PageBlob", max_concurrency=8)``.
A second figure uploads the same data in a 32 GiB virtual disk: time should
follow the data, not the virtual size.

Azurite runs disk-backed and is restarted for every measurement (it never
gives memory back). Prints:
  upload-4GiB: ratio=X.XX (imageport A s, sdk-upload_blob B s) peak_rss imageport=N MiB
  upload-32GiB-vs-4GiB: ratio=X.XX (imageport 32 GiB A s, imageport 4 GiB B s)
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

from measure import timed

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


def ours(vhdx: Path, work: Path):  # type: ignore[no-untyped-def]
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
        return timed([sys.executable, "-c", OURS, str(vhdx), url, str(work / "cp")])

    return with_azurite(run)


def naive(fixed_vhd: Path):  # type: ignore[no-untyped-def]
    return with_azurite(
        lambda azurite: timed([sys.executable, "-c", NAIVE, str(fixed_vhd), azurite.info["connection_string"]])
    )


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
        ours4_s, ours_rss = ours(vhdx4, work)
        naive_s, _ = naive(fixed4)
        print(
            f"upload-4GiB: ratio={ours4_s / naive_s:.2f} (imageport {ours4_s:.2f} s, sdk-upload_blob "
            f"{naive_s:.2f} s) speedup={naive_s / ours4_s:.1f}x peak_rss imageport={ours_rss} MiB",
            flush=True,
        )
        ours32_s, _ = ours(vhdx32, work)
        print(
            f"upload-32GiB-vs-4GiB: ratio={ours32_s / ours4_s:.2f} (imageport 32 GiB {ours32_s:.2f} s, "
            f"imageport 4 GiB {ours4_s:.2f} s)",
            flush=True,
        )
    finally:
        for f in work.rglob("*"):
            if f.is_file():
                f.unlink()


if __name__ == "__main__":
    main()
