"""How every benchmark times a command: wall seconds and the command's own peak RSS."""

from __future__ import annotations

import subprocess
import time


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of one command.

    GNU time forks the command from a small process, so the peak RSS is the command's own
    (a child forked straight from a Python benchmark would inherit its high-water mark).
    """
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd[:4])} ...\n{done.stderr.decode()[-3000:]}")
    return elapsed, int(done.stderr.decode().strip().splitlines()[-1]) // 1024
