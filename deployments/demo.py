"""``make demo``: the most complete real path on the embedded default.

On Prefect's ephemeral server (state in $PREFECT_HOME) with the local
platform: saves a ``local`` connector over ./demo-output, generates a sample
master image (a sparse 2 GiB disk with an MBR and scattered data), runs the
``convert-disk`` flow twice -- raw to VHDX (what an export writes to a share),
then VHDX to an Azure-ready fixed VHD (what an upload sends) -- and shows that
the content hash is the same in every container. Ends with ``check-connectors``.
The workflows issue turns this into a full MCS->MCS port.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from blocks.registry import save_connector
from flows.check_connectors import check_connectors
from flows.convert_disk import convert_disk
from imageport.models import DiskFormat, LocalRef

DEMO_ROOT = Path("demo-output").absolute()
MiB = 1024 * 1024


def make_sample_image(path: Path, size: int = 2048 * MiB) -> None:
    """A sparse disk shaped like a small system disk: MBR, one NTFS-typed partition, data runs."""
    rng = random.Random(42)
    mbr = bytearray(512)
    # one partition: bootable, type 0x07 (NTFS), starting at 1 MiB, to the end of the disk
    entry = bytes([0x80, 0, 0, 0, 0x07, 0, 0, 0]) + (2048).to_bytes(4, "little")
    entry += (size // 512 - 2048).to_bytes(4, "little")
    mbr[446:462] = entry
    mbr[510:512] = b"\x55\xaa"
    with open(path, "wb") as f:
        f.truncate(size)
        f.write(mbr)
        f.seek(MiB)
        f.write(b"\xebR\x90NTFS    " + bytes(500))
        for _ in range(40):
            f.seek(rng.randrange(2, size // MiB - 8) * MiB)
            f.write(rng.randbytes(rng.randrange(1, 4) * MiB))


def main() -> None:
    (DEMO_ROOT / "vms").mkdir(parents=True, exist_ok=True)
    (DEMO_ROOT / "share").mkdir(exist_ok=True)
    save_connector("local", "local", {"root": str(DEMO_ROOT)}, overwrite=True)
    sample = DEMO_ROOT / "vms" / "win-gold.raw"
    make_sample_image(sample)
    print(f"sample master image: {sample} (2 GiB virtual, sparse)")

    exported = convert_disk(
        LocalRef(path="vms/win-gold.raw"), LocalRef(path="share/win-gold.vhdx"), DiskFormat.VHDX, overwrite=True
    )
    uploaded = convert_disk(
        LocalRef(path="share/win-gold.vhdx"), LocalRef(path="share/win-gold-azure.vhd"), DiskFormat.VHD, overwrite=True
    )
    check_connectors(names=["local"])

    print("\n| step | output | format | data written | content hash |")
    print("|---|---|---|---|---|")
    for step, r in (("export-like", exported), ("upload-like", uploaded)):
        print(f"| {step} | {r['output']} | {r['format']} | {r['data_written'] / MiB:,.0f} MiB | {r['content_hash']} |")
    same = exported["content_hash"] == uploaded["content_hash"]
    print(f"\ncontent hash identical across raw, VHDX and fixed VHD: {same}")
    print(
        f"Runs and artifacts are stored in {os.environ.get('PREFECT_HOME', '~/.prefect')}; "
        "see them in the UI: `make ui`, then open http://127.0.0.1:4200/runs"
    )
    if not same:
        raise SystemExit("content hash changed between containers")


if __name__ == "__main__":
    main()
