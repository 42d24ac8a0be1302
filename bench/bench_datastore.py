"""Datastore export: imageport's parallel ranged reads vs one sequential GET (curl), one run, same file.

The suite's vCenter simulator serves a 2 GiB flat disk with ~25% data
(descriptor + ``-flat.vmdk``). imageport reads it through ``/folder`` with
ranged GETs (4 MiB parts, 4 connections, 6 parts ahead) into a local VHDX, hashing it;
curl downloads the flat file in one GET. A flat extent has no allocation
map, so both read every byte. A second figure reads the same disk as a
monolithicSparse VMDK: bytes fetched follow the allocated data.

The vcsim ``/folder`` endpoint honours ``Range`` (Go's ``http.ServeContent``: 206 with
Content-Range, as ESXi's does), so the bench reads it directly. Runs take turns after an
untimed warm-up round (``measure.alternated``), ``sync`` before each (curl's 2 GiB of
dirty pages must not be flushed on imageport's time); the median of ``BENCH_ROUNDS`` (3)
is reported with the spread and the load.
On a 2-core machine both sides share the CPU with vcsim's TLS: curl's one stream is
bound by writing 2 GiB locally, imageport writes only the data (~25%) as VHDX.
``BENCH_PROFILE=DIR`` samples imageport's run with py-spy afterwards (untimed).

  datastore-export-2GiB: ratio=X.XX (imageport A s, curl B s) median of 3, spread a/b s, load L peak_rss imageport=N MiB
  datastore-sparse-bytes: ratio=X.XX (fetched A MiB, allocated B MiB)
ratio below 1.00: imageport is faster.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import ROUNDS, alternated, load, profile, spread_note

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.infra.configs import vcsim_vsphere
from tests.infra.services import start_vcsim

MiB = 1024 * 1024
SIZE = 2048 * MiB

OURS = """
import sys, warnings
warnings.simplefilter("ignore")
from imageport.disks.local_files import LOCAL
from imageport.models import DiskFormat
from imageport.platforms.vsphere.session import VsphereConfig
from imageport.transfer.copy import copy_image
session = VsphereConfig.model_validate_json(sys.argv[1]).build()
with session:
    fs = session.datastore_files("LocalDS_0")
    copy_image(sys.argv[2], fs, sys.argv[3], LOCAL, DiskFormat.VHDX, overwrite=True)
    fs.close()
"""

COUNT = """
import sys, warnings
warnings.simplefilter("ignore")
from imageport.disks.convert import hash_disk
from imageport.platforms.vsphere.session import VsphereConfig
session = VsphereConfig.model_validate_json(sys.argv[1]).build()
with session:
    fs = session.datastore_files("LocalDS_0")
    hash_disk(sys.argv[2], fs=fs)
    fs.close()
print(fs.fetched)
"""


def make_raw(path: Path) -> int:
    rng = random.Random(11)
    allocated = 0
    with open(path, "wb") as f:
        f.truncate(SIZE)
        while allocated < SIZE // 4:
            length = rng.randrange(1, 8) * MiB
            f.seek(rng.randrange(0, SIZE - length) // MiB * MiB)
            f.write(os.urandom(length))
            allocated += length
    return allocated


def main() -> None:
    vcsim = start_vcsim()
    work = Path(tempfile.mkdtemp(prefix="imageport-bench-ds-"))
    try:
        raw = work / "src.raw"
        make_raw(raw)
        flat = work / "flat.vmdk"
        sparse = work / "sparse.vmdk"
        for out, sub in ((flat, "monolithicFlat"), (sparse, "monolithicSparse")):
            subprocess.run(
                ["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", f"subformat={sub}", str(raw), str(out)],
                check=True,
            )
        config = vcsim_vsphere(vcsim)
        config_json = config.model_dump_json().replace('"**********"', f'"{vcsim.info["password"]}"')
        with config.build() as session:
            files = session.datastore_files("LocalDS_0")
            for local, remote in ((flat, "bench/flat.vmdk"), (work / "flat-flat.vmdk", "bench/flat-flat.vmdk")):
                with open(local, "rb") as f:
                    files.put(remote, f)  # type: ignore[arg-type]
            files.put("bench/sparse.vmdk", sparse.read_bytes())
            url = files.url("bench/flat-flat.vmdk")
            files.close()
        ours_cmd = [sys.executable, "-c", OURS, config_json, "bench/flat.vmdk", str(work / "out.vhdx")]
        curl_cmd = ["curl", "-sk", "-o", str(work / "curl.bin"), url]
        ours, curl = alternated([ours_cmd, curl_cmd], ROUNDS, os.sync)  # same cache state: no dirty pages
        assert (work / "curl.bin").stat().st_size == SIZE
        print(
            f"datastore-export-2GiB: ratio={ours.median / curl.median:.2f} (imageport {ours.median:.2f} s, "
            f"curl {curl.median:.2f} s) {spread_note(ours, curl)} peak_rss imageport={ours.peak} MiB",
            flush=True,
        )
        print(load(), flush=True)
        profile("datastore-export", ours_cmd)
        counted = subprocess.run(
            [sys.executable, "-c", COUNT, config_json, "bench/sparse.vmdk"], check=True, capture_output=True, text=True
        )
        fetched = int(counted.stdout.strip().splitlines()[-1])
        allocated = sparse.stat().st_size
        print(
            f"datastore-sparse-bytes: ratio={fetched / allocated:.2f} (fetched {fetched / MiB:.0f} MiB, "
            f"sparse VMDK file {allocated / MiB:.0f} MiB, virtual {SIZE / MiB:.0f} MiB)",
            flush=True,
        )
    finally:
        vcsim.stop()
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
