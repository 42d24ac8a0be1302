"""Disk conversion: imageport vs qemu-img on the same 4 GiB image, in one run.

The image has ~1 GiB of data (25 %) in scattered runs: half random, half
compressible (text-like), as real system disks are. Each tool runs in its own
process (best of ``ROUNDS``); peak RSS comes from that process's rusage.

Prints one line per figure:
  NAME: ratio=X.XX (imageport A s, qemu-img+sync B s) nohash_ratio=... nosync_ratio=... peak_rss ...
ratio = imageport time / reference time (below 1.00: imageport is faster).
imageport fsyncs its output before renaming it into place (nothing
half-written ever looks complete), so the reference is ``qemu-img convert``
followed by ``sync FILE`` (an fsync of the output); the figure against bare
qemu-img, which leaves the data in the page cache, is printed beside it, and
so is imageport without its content hash (qemu-img verifies nothing).
Dirty pages are flushed (untimed) before every run so runs do not pay for
each other. Peak RSS is measured by GNU time around each process.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import timed

MiB = 1024 * 1024
SIZE = 4 * 1024 * MiB
DATA = SIZE // 4
ROUNDS = 3
PY = sys.executable

CASES = [
    # name, source kind, imageport --to, qemu -O and options
    ("vmdk-stream->vhd-fixed", "vmdk-stream", "vhd", ["-O", "vpc", "-o", "subformat=fixed,force_size=on"]),
    ("vhdx->vhd-fixed", "vhdx", "vhd", ["-O", "vpc", "-o", "subformat=fixed,force_size=on"]),
    ("raw->vhdx", "raw", "vhdx", ["-O", "vhdx"]),
    ("raw->vmdk-stream", "raw", "vmdk-stream", ["-O", "vmdk", "-o", "subformat=streamOptimized"]),
]
QEMU_SOURCE = {"vmdk-stream": ["-O", "vmdk", "-o", "subformat=streamOptimized"], "vhdx": ["-O", "vhdx"]}
QEMU_FORMAT = {"raw": "raw", "vmdk-stream": "vmdk", "vhdx": "vhdx"}


def make_source(path: Path) -> None:
    rng = random.Random(2026)
    text = b"".join(f"C:\\Windows\\System32\\driver{i:05d}.sys version 10.0.{i} ok\r\n".encode() for i in range(4096))
    with open(path, "wb") as f:
        f.truncate(SIZE)
        written = 0
        while written < DATA:
            length = rng.randrange(1, 16) * MiB
            offset = rng.randrange(0, SIZE - length) // MiB * MiB
            f.seek(offset)
            data = os.urandom(length // 2) + (text * (length // len(text) + 1))[: length - length // 2]
            f.write(data)
            written += length


def run(cmd: list[str]) -> tuple[float, int]:
    """Flush dirty pages first (untimed), so runs do not pay for each other; then time the command."""
    subprocess.run(["sync"], check=True)
    return timed(cmd)


def interleaved(cmds: list[tuple[list[str], Path]]) -> list[tuple[float, int]]:
    """Best time and peak RSS of each command, the commands taking turns in every round so that
    page-cache state (reclaim, writeback) is shared fairly."""
    times: list[list[float]] = [[] for _ in cmds]
    rss = [0] * len(cmds)
    for _ in range(ROUNDS):
        for i, (cmd, out) in enumerate(cmds):
            out.unlink(missing_ok=True)
            elapsed, peak = run(cmd)
            times[i].append(elapsed)
            rss[i] = max(rss[i], peak)
            out.unlink(missing_ok=True)
    return [(min(t), r) for t, r in zip(times, rss, strict=True)]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="imageport-bench-", dir=os.environ.get("BENCH_DIR")))
    raw = work / "src.raw"
    make_source(raw)
    sources = {"raw": raw}
    for kind, opts in QEMU_SOURCE.items():
        sources[kind] = work / f"src.{kind}"
        subprocess.run(["qemu-img", "convert", "-f", "raw", *opts, str(raw), str(sources[kind])], check=True)
    for name, kind, to, qemu_opts in CASES:
        src = sources[kind]
        ours_out, ref_out = work / f"ours.{to}", work / f"ref.{to}"
        ours_cmd = [
            PY,
            "-c",
            "import sys; from imageport.disks.convert import convert; from imageport.models import "
            "DiskFormat; convert(sys.argv[1], sys.argv[2], DiskFormat(sys.argv[3]), "
            "hashing=sys.argv[4] == 'hash')",
            str(src),
            str(ours_out),
            to,
            "hash",
        ]
        nohash_cmd = [*ours_cmd[:-1], "nohash"]
        qemu = ["qemu-img", "convert", "-f", QEMU_FORMAT[kind], *qemu_opts, str(src), str(ref_out)]
        durable = ["sh", "-c", '"$@" && sync "$0"', str(ref_out), *qemu]
        (ours_s, ours_rss), (nohash_s, _), (ref_s, ref_rss), (bare_s, _) = interleaved(
            [(ours_cmd, ours_out), (nohash_cmd, ours_out), (durable, ref_out), (qemu, ref_out)]
        )
        print(
            f"{name}: ratio={ours_s / ref_s:.2f} (imageport {ours_s:.2f} s, qemu-img+sync {ref_s:.2f} s) "
            f"nohash_ratio={nohash_s / ref_s:.2f} (imageport --no-hash {nohash_s:.2f} s) "
            f"nosync_ratio={ours_s / bare_s:.2f} (qemu-img {bare_s:.2f} s) "
            f"peak_rss imageport={ours_rss} MiB qemu-img={ref_rss} MiB",
            flush=True,
        )
    for f in work.iterdir():
        f.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
