"""The content hash and the optional whole-stream digests, checked against hashlib."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imageport.disks.content_hash import WINDOW, DiskHasher
from imageport.disks.convert import convert, hash_disk
from imageport.models import DiskFormat
from tests.core.disks.images import MiB, content_hash_file, make_raw, sha256_file


@pytest.mark.parametrize("size", [WINDOW, 3 * WINDOW + 512, 10 * MiB + 4096, 512])
def test_content_hash_matches_an_independent_computation(size: int, tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "r.raw", size, runs=2, seed=size, max_run=min(size, MiB))
    result = hash_disk(raw, sha256=True, md5=True)
    assert result.content_hash == content_hash_file(raw)
    assert result.sha256 == sha256_file(raw)
    assert result.md5 == hashlib.md5(raw.read_bytes()).hexdigest()


def test_content_hash_is_the_same_for_every_container(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "r.raw", 30 * MiB, runs=5, seed=9)
    digests = {hash_disk(raw).content_hash}
    for fmt in ("vhdx", "vhd-dynamic", "vmdk-stream", "vmdk-sparse", "vhd"):
        out = tmp_path / f"o.{fmt}"
        digests.add(convert(raw, out, DiskFormat(fmt)).content_hash)
        digests.add(hash_disk(out).content_hash)
    assert len(digests) == 1


def test_content_hash_depends_on_every_byte_and_on_the_size(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "r.raw", 12 * MiB, runs=3, seed=1)
    before = hash_disk(raw).content_hash
    with open(raw, "r+b") as f:
        f.seek(9 * MiB + 1)
        f.write(b"\x01")
    assert hash_disk(raw).content_hash != before
    with open(raw, "r+b") as f:
        f.truncate(12 * MiB + 512)
    assert len({before, hash_disk(raw).content_hash}) == 2


def test_zero_windows_are_free_and_partial_feeding_is_order_safe() -> None:
    size = 1024 * WINDOW  # 4 GiB of zeros: only the 1024 window digests are combined
    hasher = DiskHasher(size)
    hasher.update(b"\x07" * 100)
    hasher.zeros_until(size - 100)
    hasher.update(b"\x09" * 100)
    tree = hashlib.sha256(size.to_bytes(8, "big"))
    tree.update(hashlib.sha256(b"\x07" * 100 + bytes(WINDOW - 100)).digest())
    for _ in range(1022):
        tree.update(hashlib.sha256(bytes(WINDOW)).digest())
    tree.update(hashlib.sha256(bytes(WINDOW - 100) + b"\x09" * 100).digest())
    assert hasher.result()[0] == "sha256-4m:" + tree.hexdigest()
