"""Disk conversion: imageport vs qemu-img on the same 4 GiB image, in one run.

The image has ~1 GiB of data (25 %) in scattered runs: half random, half
compressible (text-like), as real system disks are. Each tool runs in its own
process; peak RSS comes from that process's rusage (GNU time).

Prints one line per figure:
  NAME: ratio=X.XX (imageport A s, qemu-img+sync B s) nohash_ratio=... nosync_ratio=... spread ... peak_rss ...
ratio = imageport time / reference time (below 1.00: imageport is faster).
imageport fsyncs its output before renaming it into place (nothing
half-written ever looks complete), so the reference is ``qemu-img convert``
followed by ``sync FILE`` (an fsync of the output); the figure against bare
qemu-img, which leaves the data in the page cache, is printed beside it, and
so is imageport without its content hash (qemu-img verifies nothing).

Fairness on a shared machine (``measure.alternated``): both tools read the same
source files; one untimed warm-up round puts every source in the page cache for
all; then ``BENCH_ROUNDS`` (3) rounds in which the four commands take turns in a
rotating order; dirty pages are flushed and the last output removed (untimed)
before every run. Each time is the median of its rounds; the spread (fastest-
slowest) and the machine's load are printed with it, and so is the ratio of CPU
seconds (user + system, median), which the neighbours' load barely moves.
``BENCH_DISKS_CASES`` (comma-separated names) runs only some figures.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import alternated, load

MiB = 1024 * 1024
SIZE = 4 * 1024 * MiB
DATA = SIZE // 4
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
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


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="imageport-bench-", dir=os.environ.get("BENCH_DIR")))
    try:
        run_cases(work)
    finally:
        shutil.rmtree(work)


def run_cases(work: Path) -> None:
    print(f"disk conversions: {load()}", flush=True)
    raw = work / "src.raw"
    make_source(raw)
    sources = {"raw": raw}
    for kind, opts in QEMU_SOURCE.items():
        sources[kind] = work / f"src.{kind}"
        subprocess.run(["qemu-img", "convert", "-f", "raw", *opts, str(raw), str(sources[kind])], check=True)
    wanted = os.environ.get("BENCH_DISKS_CASES")
    for name, kind, to, qemu_opts in CASES:
        if wanted and name not in wanted.split(","):
            continue
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
        outputs = (ours_out, ref_out)

        def fresh(outputs: tuple[Path, ...] = outputs) -> None:
            for out in outputs:
                out.unlink(missing_ok=True)
            subprocess.run(["sync"], check=True)

        ours, nohash, ref, bare = alternated([ours_cmd, nohash_cmd, durable, qemu], ROUNDS, fresh)
        fresh()
        print(
            f"{name}: ratio={ours.median / ref.median:.2f} (imageport {ours.median:.2f} s, "
            f"qemu-img+sync {ref.median:.2f} s) "
            f"nohash_ratio={nohash.median / ref.median:.2f} (imageport --no-hash {nohash.median:.2f} s) "
            f"nosync_ratio={ours.median / bare.median:.2f} (qemu-img {bare.median:.2f} s) "
            f"cpu_ratio={ours.cpu / max(ref.cpu, 0.01):.2f} (cpu imageport {ours.cpu:.2f} s, "
            f"qemu-img+sync {ref.cpu:.2f} s) "
            f"spread imageport={ours.span()} qemu-img+sync={ref.span()} "
            f"peak_rss imageport={ours.peak} MiB qemu-img={ref.peak} MiB; {load()}",
            flush=True,
        )


if __name__ == "__main__":
    main()
