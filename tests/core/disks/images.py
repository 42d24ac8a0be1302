"""Test images built at test time: random data at random offsets, then qemu-img
writes every format and subformat it can. qemu-img is the independent judge."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
from pathlib import Path

MiB = 1024 * 1024

# qemu-img output formats: our name -> (qemu -O, -o options, qemu -f when reading it back)
QEMU_WRITES = {
    "vhd-fixed": ("vpc", "subformat=fixed,force_size=on", "vpc"),
    "vhd-dynamic": ("vpc", "subformat=dynamic,force_size=on", "vpc"),
    "vhdx-dynamic": ("vhdx", "subformat=dynamic", "vhdx"),
    "vhdx-fixed": ("vhdx", "subformat=fixed", "vhdx"),
    "vhdx-1mib-blocks": ("vhdx", "block_size=1048576", "vhdx"),
    "vmdk-stream": ("vmdk", "subformat=streamOptimized", "vmdk"),
    "vmdk-sparse": ("vmdk", "subformat=monolithicSparse", "vmdk"),
    "vmdk-flat": ("vmdk", "subformat=monolithicFlat", "vmdk"),
    "vmdk-split-sparse": ("vmdk", "subformat=twoGbMaxExtentSparse", "vmdk"),
    "vmdk-split-flat": ("vmdk", "subformat=twoGbMaxExtentFlat", "vmdk"),
}
# imageport output formats -> qemu -f to read them
QEMU_READS = {
    "raw": "raw",
    "vhd": "vpc",
    "vhd-dynamic": "vpc",
    "vhdx": "vhdx",
    "vmdk-stream": "vmdk",
    "vmdk-sparse": "vmdk",
}


def make_full(path: Path, size: int) -> Path:
    """A raw file with random data in every 4 MiB window (an interrupted transfer has surely sent its first)."""
    with open(path, "wb") as f:
        for _ in range(-(-size // (4 * MiB))):
            f.write(os.urandom(min(4 * MiB, size - f.tell())))
    return path


class Interrupted(Exception):
    """Raised by ``interrupt_after``: a run stopped half-way."""


def interrupt_after(limit: int):  # type: ignore[no-untyped-def]
    """A progress callback that stops the run once ``limit`` bytes were done."""

    def progress(done: int, total: int) -> None:
        if done >= limit:
            raise Interrupted(f"stopped at {done} of {total}")

    return progress


def make_raw(path: Path, size: int, runs: int, seed: int, max_run: int = 3 * MiB) -> Path:
    """A sparse raw file with ``runs`` random-length runs of random data at random offsets."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for _ in range(runs):
            length = rng.randrange(1, max_run)
            offset = rng.randrange(0, max(1, size - length))
            f.seek(offset)
            f.write(rng.randbytes(length))
    return path


def make_partitioned(path: Path, size: int, label: str) -> Path:
    """A sparse raw disk with one partition table written by sfdisk: ``dos`` (MBR) or ``gpt``."""
    with open(path, "wb") as f:
        f.truncate(size)
    script = f"label: {label}\nstart=2048, type={'L' if label == 'gpt' else '7'}\n"
    subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", str(path)], input=script.encode(), check=True,
                   capture_output=True)  # fmt: skip
    return path


def qemu_convert(src: Path, dst: Path, kind: str) -> Path:
    out_fmt, options, _ = QEMU_WRITES[kind]
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", out_fmt, "-o", options, str(src), str(dst)],
        check=True,
        capture_output=True,
    )
    return dst


def qemu_compare(a: Path, fa: str, b: Path, fb: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-img", "compare", "-f", fa, "-F", fb, str(a), str(b)], capture_output=True, text=True)


def qemu_map_data(path: Path, fmt: str) -> int:
    """Bytes qemu-img's own allocation map reports as data."""
    out = subprocess.run(
        ["qemu-img", "map", "-f", fmt, "--output=json", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return sum(e["length"] for e in json.loads(out) if e["data"])


def content_hash_file(path: Path, pad_to: int | None = None) -> str:
    """imageport's content hash computed independently from a raw file: SHA-256 over the
    size (8 bytes big-endian) and the SHA-256 of each 4 MiB window, zero-padded to ``pad_to``."""
    size = max(path.stat().st_size, pad_to or 0)
    tree = hashlib.sha256(size.to_bytes(8, "big"))
    with open(path, "rb") as f:
        for start in range(0, size, 4 * MiB):
            window = f.read(min(4 * MiB, size - start))
            window += bytes(min(4 * MiB, size - start) - len(window))
            tree.update(hashlib.sha256(window).digest())
    return "sha256-4m:" + tree.hexdigest()


def sha256_file(path: Path, pad_to: int | None = None) -> str:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
            size += len(chunk)
    if pad_to is not None and pad_to > size:
        h.update(bytes(pad_to - size))
    return h.hexdigest()


def libvhdi_sha256(path: Path, parent: Path | None = None) -> tuple[int, str]:
    """(size, SHA-256) of a VHD/VHDX as libyal's libvhdi reads it: an independent reader that,
    unlike qemu, handles 4096-byte logical sectors and differencing disks."""
    import pyvhdi  # Debian's python3-libvhdi

    f = pyvhdi.file()
    f.open(str(path))
    parent_file = None
    if parent is not None:
        parent_file = pyvhdi.file()
        parent_file.open(str(parent))
        f.set_parent(parent_file)
    h = hashlib.sha256()
    size = f.get_media_size()
    pos = 0
    while pos < size:
        data = f.read_buffer_at_offset(min(4 * MiB, size - pos), pos)
        assert data, f"libvhdi returned no data at {pos}"
        h.update(data)
        pos += len(data)
    f.close()
    if parent_file is not None:
        parent_file.close()
    return size, h.hexdigest()


def commit_or_abort(sink) -> None:  # type: ignore[no-untyped-def]
    """Commit ``sink`` as a writer does: on any failure abort it (temporary file and lock go), then re-raise."""
    try:
        sink.commit()
    except BaseException:
        sink.abort()
        raise
