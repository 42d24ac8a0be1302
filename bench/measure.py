"""How every benchmark times a command: wall seconds and the command's own peak RSS; medians; profiles."""

from __future__ import annotations

import collections
import os
import statistics
import subprocess
import time
from pathlib import Path

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


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


class Runs:
    """The rounds of one command: median seconds, the spread (max - min) around it, peak RSS."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.rss: list[int] = []

    def add(self, measured: tuple[float, int]) -> None:
        self.seconds.append(measured[0])
        self.rss.append(measured[1])

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        return max(self.seconds) - min(self.seconds)

    @property
    def peak(self) -> int:
        return max(self.rss)


def interleaved(commands: dict[str, list[str]], rounds: int = ROUNDS, before=None) -> dict[str, Runs]:  # type: ignore[no-untyped-def]
    """Each command ``rounds`` times, turns interleaved (so a busy spell on the shared machine hits
    every side alike); ``before()`` runs untimed before each command (e.g. flush dirty pages)."""
    runs = {name: Runs() for name in commands}
    for _ in range(rounds):
        for name, cmd in commands.items():
            if before is not None:
                before()
            runs[name].add(timed(cmd))
    return runs


def spread_note(*runs: Runs) -> str:
    """`median of N, spread a/b s, load L`: what a reader needs to judge a ratio."""
    load = os.getloadavg()[0]
    return (
        f"median of {len(runs[0].seconds)}, spread "
        + "/".join(f"{r.spread:.2f}" for r in runs)
        + (f" s, load {load:.1f}")
    )


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def profile(name: str, cmd: list[str], top: int = 6) -> None:
    """With ``BENCH_PROFILE=DIR``: sample ``cmd`` (a Python command) with py-spy, untimed, keep the raw
    stacks in DIR/NAME.txt and print, per thread, how many samples it was busy and where (its
    innermost frames). Idle waits are not sampled, so a busy count near the run's length is the
    thread that bounds it."""
    out_dir = os.environ.get("BENCH_PROFILE")
    if not out_dir:
        return
    out = Path(out_dir) / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    rate = 100
    start = time.perf_counter()
    subprocess.run(
        ["py-spy", "record", "--threads", "-r", str(rate), "-f", "raw", "-o", str(out), "--", *cmd],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - start
    threads: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]
        threads[thread][frames[-1] if len(frames) > 1 else "(no Python frame)"] += int(count)
    print(f"profile {name} ({wall:.1f} s under py-spy, {rate} samples/s, stacks in {out}):")
    for thread, leaves in sorted(threads.items(), key=lambda item: -sum(item[1].values())):
        busy = sum(leaves.values())
        if busy < rate:  # under a second of work
            continue
        print(f"  {thread}: busy {busy / rate:.1f} s")
        for where, count in leaves.most_common(top):
            print(f"    {100 * count / busy:5.1f}%  {where}")
