"""Memory stays bounded whatever the virtual size: a 2000 GiB disk with a few MiB of data
converts into every format, and is read back, in a process whose peak RSS GNU time measures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.disks.images import MiB

GiB = 1024 * MiB
SIZE = 2000 * GiB  # just under the dynamic VHD limit (2040 GiB)
LIMIT_KIB = 256 * 1024

SCRIPT = """
import sys
from imageport.disks.convert import convert
from imageport.disks.convert import hash_disk
from imageport.models import DiskFormat
src, dst, fmt = sys.argv[1:4]
made = convert(src, dst, DiskFormat(fmt))
again = hash_disk(dst)
assert made.content_hash == again.content_hash == hash_disk(src).content_hash, (made, again)
print(made.virtual_size)
"""


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.raw"
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for offset in (0, 777 * GiB + 12345 * 512, SIZE - MiB):
            f.seek(offset)
            f.write(bytes(range(256)) * 4096)
    return path


@pytest.mark.parametrize("fmt", ["vhdx", "vhd-dynamic", "vhd", "vmdk-sparse", "vmdk-stream"])
def test_peak_memory_is_bounded_for_a_2000_gib_disk(fmt: str, huge: Path, tmp_path: Path) -> None:
    out = tmp_path / f"out.{fmt}"
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-c", SCRIPT, str(huge), str(out), fmt],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    assert int(done.stdout.strip()) >= SIZE
    assert peak_kib < LIMIT_KIB, f"{fmt}: peak RSS {peak_kib // 1024} MiB"
    assert out.stat().st_blocks * 512 < 256 * MiB  # and the output stays sparse
