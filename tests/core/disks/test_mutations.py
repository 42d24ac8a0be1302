"""Mutation run: thousands of damaged copies of small qemu-made images (bit flips, byte
substitutions and truncations in their headers and metadata). qemu-img is the judge: every
mutant that qemu-img (reading with ``-f`` of the original format) and imageport (detecting
the format from content) both accept must read identically — same virtual size, same bytes.
A damaged container imageport reads as something else (raw, typically) is exactly the bug
this catches. Deterministic (fixed seed); qemu-img runs in two worker threads."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from imageport.disks.convert import hash_disk
from imageport.disks.vmdk import HEADER, parse_header
from imageport.errors import FormatError, InputError
from imageport.models import DiskFormat
from tests.core.disks.images import MiB, make_raw, qemu_convert

MUTANTS = 2000
KINDS = ("vhd-fixed", "vhd-dynamic", "vhdx-dynamic", "vmdk-sparse", "vmdk-stream", "vmdk-flat")
QEMU_FORMAT = {"vhd-fixed": "vpc", "vhd-dynamic": "vpc", "vhdx-dynamic": "vhdx"} | {
    k: "vmdk" for k in ("vmdk-sparse", "vmdk-stream", "vmdk-flat")
}


def _areas(kind: str, path: Path) -> list[tuple[int, int]]:
    """(offset, length) of the structures of one image that mutations hit."""
    data = path.read_bytes()
    size = len(data)
    if kind == "vhd-fixed":
        return [(size - 512, 512)]
    if kind == "vhd-dynamic":
        return [(0, 512), (512, 1024), (1536, 64), (size - 512, 512)]
    if kind == "vhdx-dynamic":
        meta = data.index(b"metadata", MiB)
        bat_off = [
            int.from_bytes(data[192 * 1024 + 16 + 32 * i + 16 : 192 * 1024 + 16 + 32 * i + 24], "little")
            for i in range(2)
        ]
        return [
            (0, 64),
            (64 * 1024, 128),
            (128 * 1024, 128),
            (192 * 1024, 96),
            (256 * 1024, 96),
            (meta, 256),
            (meta + 64 * 1024, 64),
            *((off, 64) for off in bat_off if off != meta),
        ]
    if kind == "vmdk-flat":
        return [(0, size)]
    h = parse_header(str(path), data[: HEADER.size], 0)
    areas = [(0, 512), (h.descriptor_offset * 512, min(h.descriptor_size * 512, 1024))]
    if kind == "vmdk-sparse":
        areas += [(h.gd_offset * 512, 64), (h.rgd_offset * 512, 64)]
    else:
        areas += [(size - 1536, 1536), (h.overhead * 512, 64)]
    return areas


def _mutate(rng: random.Random, data: bytes, areas: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    choice = rng.random()
    if choice < 0.12:  # truncation: inside a structure, or a few bytes off the end
        if rng.random() < 0.5:
            start, length = rng.choice(areas)
            return bytes(out[: start + rng.randrange(length)])
        return bytes(out[: len(out) - rng.randrange(1, 1025)])
    for _ in range(rng.randint(1, 3)):
        start, length = rng.choice(areas)
        pos = start + rng.randrange(length)
        if choice < 0.6:  # bit flips
            out[pos] ^= 1 << rng.randrange(8)
        else:  # byte substitutions, biased towards the values parsers trip on
            out[pos] = rng.choice((0, 0xFF, 0x7F, 0x80, 1, rng.randrange(256)))
    return bytes(out)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("templates")
    raw = make_raw(d / "src.raw", 2 * MiB, runs=3, seed=14, max_run=256 * 1024)
    out = {}
    for kind in KINDS:
        (d / kind).mkdir()
        name = "disk.vmdk" if kind.startswith("vmdk") else "disk.img"
        out[kind] = qemu_convert(raw, d / kind / name, kind)
    return out


class Judge:
    """One worker: a folder with the template's side files, one mutant at a time."""

    def __init__(self, kind: str, template: Path, folder: Path) -> None:
        shutil.copytree(template.parent, folder)
        self.kind = kind
        self.target = folder / template.name
        self.raw = folder / "qemu.raw"

    def __call__(self, mutant: bytes) -> tuple[str, str]:
        self.target.write_bytes(mutant)
        self.raw.unlink(missing_ok=True)
        qemu = subprocess.run(
            ["qemu-img", "convert", "-f", QEMU_FORMAT[self.kind], "-O", "raw", str(self.target), str(self.raw)],
            capture_output=True,
        )
        try:
            ours = hash_disk(self.target).content_hash
        except (FormatError, InputError) as exc:
            ours = f"refused: {exc}"
        if qemu.returncode != 0:
            return ("qemu refused" if ours.startswith("refused") else "only imageport accepts"), ours
        if ours.startswith("refused"):
            return "only qemu accepts", ours
        theirs = hash_disk(self.raw, source_format=DiskFormat.RAW).content_hash
        return ("identical" if theirs == ours else "DIFFERENT"), ours


def test_mutants_that_both_accept_read_identically(templates: dict[str, Path], tmp_path: Path) -> None:
    rng = random.Random(14)
    jobs: list[tuple[str, bytes]] = []
    for i in range(MUTANTS):
        kind = KINDS[i % len(KINDS)]
        template = templates[kind]
        jobs.append((kind, _mutate(rng, template.read_bytes(), _areas(kind, template))))
    judges: dict[tuple[str, int], Callable[[bytes], tuple[str, str]]] = {}

    def judge(index: int) -> tuple[str, str, str]:
        kind, mutant = jobs[index]
        key = (kind, index % 2)
        if key not in judges:
            judges[key] = Judge(kind, templates[kind], tmp_path / f"{kind}-{index % 2}")
        verdict, detail = judges[key](mutant)
        return kind, verdict, detail

    # two lanes, each with its own folder per kind: even indexes in one thread, odd in the other
    with ThreadPoolExecutor(2) as pool:
        lanes = [pool.submit(lambda lane=lane: [judge(i) for i in range(lane, MUTANTS, 2)]) for lane in (0, 1)]
        results = [r for lane in lanes for r in lane.result()]
    tally = Counter((kind, verdict) for kind, verdict, _ in results)
    different = [(kind, detail) for kind, verdict, detail in results if verdict == "DIFFERENT"]
    assert len(results) == MUTANTS
    assert different == [], (tally, different[:10])
    for kind in KINDS:  # the run means something: per format, some mutants pass, some are refused
        assert tally[(kind, "identical")] > 0, tally
        assert tally[(kind, "qemu refused")] + tally[(kind, "only qemu accepts")] > 0, tally
