"""SMB copy: imageport's pipelined writer and reader vs Samba's own ``smbclient -c put/get``, same share, one run.

A private smbd on 127.0.0.1 (the test suite's recipe). The file is 1 GiB of
incompressible data (so neither side can skip zeros); imageport copies it as
raw through ``convert`` with hashing off (``smbclient`` verifies nothing
either). Median of ``ROUNDS`` (spread and load printed), turns interleaved, ``sync``
before each; ``BENCH_PROFILE=DIR`` samples imageport's get with py-spy afterwards.

  smb-put-1GiB: ratio=X.XX (imageport A s, smbclient B s) peak_rss imageport=N MiB smbclient=M MiB
and the same for ``-signed`` (smbclient made to sign, as imageport does) and for ``smb-get-1GiB``
(the file read off the share into a local file, as a PVS vDisk is read), plus
``smb-get-1GiB-signed-durable``: smbclient's get followed by an fsync of its file, since
imageport's committed output is fsynced before it is renamed into place.
ratio = imageport time / smbclient time (below 1.00: imageport is faster).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import ROUNDS, Runs, load, measured, profile, spread_note

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.infra.services import SMB_PASSWORD, SMB_USER, start_samba

MiB = 1024 * 1024
SIZE = 1024 * MiB

OURS = """
import sys
from imageport.disks.convert import convert
from imageport.models import DiskFormat
from imageport.storage.smb import SmbShareConfig
from imageport.storage.smb_files import SmbFileSystem
port, password, src = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cfg = SmbShareConfig(server="127.0.0.1", port=port, share="share", username="imgtest", password=password)
fs = SmbFileSystem(cfg.build())
if sys.argv[4] == "put":
    convert(src, "ours.raw", DiskFormat.RAW, hashing=False, overwrite=True, output_fs=fs)
else:
    convert("vdisk.raw", src, DiskFormat.RAW, hashing=False, overwrite=True, source_fs=fs)
"""


def main() -> None:
    samba = start_samba()
    work = Path(tempfile.mkdtemp(prefix="imageport-bench-smb-"))
    try:
        src = work / "src.bin"
        with open(src, "wb") as f:
            for _ in range(SIZE // (16 * MiB)):
                f.write(os.urandom(16 * MiB))
        share_dir = Path(samba.info["share_dir"])
        (share_dir / "vdisk.raw").write_bytes(src.read_bytes())  # what the get figures read
        got = work / "got.raw"
        login = [
            "smbclient",
            "//127.0.0.1/share",
            "-p",
            str(samba.port),
            "-U",
            f"{SMB_USER}%{SMB_PASSWORD}",
            "-m",
            "SMB3",
        ]
        # imageport always signs (smbprotocol requires it; Windows servers do too by default), while
        # smbclient signs only when the server demands it, which this share does not: the -signed
        # figures compare like with like.
        signed = [*login, "--client-protection=sign"]
        ours_cmd = [sys.executable, "-c", OURS, str(samba.port), SMB_PASSWORD]
        runs = (
            ("put", [*ours_cmd, str(src), "put"], share_dir / "ours.raw"),
            ("put-ref", [*login, "-c", f"put {src} theirs.raw"], share_dir / "theirs.raw"),
            ("put-signed", [*signed, "-c", f"put {src} signed.raw"], share_dir / "signed.raw"),
            ("get", [*ours_cmd, str(got), "get"], got),
            ("get-ref", [*login, "-c", f"get vdisk.raw {got}"], got),
            ("get-signed", [*signed, "-c", f"get vdisk.raw {got}"], got),
            # imageport fsyncs what it commits (nothing half-written survives a crash); smbclient does not:
            # the durable figure gives smbclient the same fsync (``sync FILE``), as bench_disks does for qemu-img
            ("get-durable", ["sh", "-c", '"$@" && sync "$0"', str(got), *signed, "-c", f"get vdisk.raw {got}"], got),
        )
        results = {name: Runs() for name, _, _ in runs}
        for _ in range(ROUNDS):
            for name, cmd, out in runs:
                out.unlink(missing_ok=True)
                subprocess.run(["sync"], check=True)
                results[name].add(measured(cmd))
                assert out.stat().st_size == SIZE, f"{name} wrote the wrong size"
                out.unlink()
        for way in ("put", "get"):
            ours = results[way]
            refs = [("ref", "smbclient"), ("signed", "smbclient signed")]
            if way == "get":
                refs.append(("durable", "smbclient signed+sync"))
            for suffix, ref in refs:
                theirs = results[f"{way}-{suffix}"]
                label = f"smb-{way}-1GiB" + {"ref": "", "signed": "-signed", "durable": "-signed-durable"}[suffix]
                print(
                    f"{label}: ratio={ours.median / theirs.median:.2f} (imageport {ours.median:.2f} s, {ref} "
                    f"{theirs.median:.2f} s) {spread_note(ours, theirs)} peak_rss imageport={ours.peak} MiB "
                    f"{ref.replace(' ', '_').replace('+', '_')}={theirs.peak} MiB",
                    flush=True,
                )
        print(load(), flush=True)
        profile("smb-get", [*ours_cmd, str(got), "get"])
        got.unlink(missing_ok=True)
    finally:
        samba.stop()
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
