"""How every benchmark times a command: wall seconds and the command's own peak RSS."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of one command."""
    run = measured(cmd)
    return run.seconds, run.peak_rss


@dataclass
class Run:
    seconds: float  # wall
    cpu: float  # user + system seconds of the command and its children
    peak_rss: int  # MiB


def measured(cmd: list[str]) -> Run:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one command.

    GNU time forks the command from a small process, so the peak RSS is the command's own
    (a child forked straight from a Python benchmark would inherit its high-water mark).
    """
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd[:4])} ...\n{done.stderr.decode()[-3000:]}")
    rss, user, system = done.stderr.decode().strip().splitlines()[-1].split()
    return Run(elapsed, float(user) + float(system), int(rss) // 1024)


@dataclass
class Timing:
    """Median wall seconds of a command's measured runs, their spread, its median CPU seconds
    (user + system: what the command itself costs, whatever its neighbours do), and the highest
    peak RSS (MiB)."""

    median: float
    low: float
    high: float
    cpu: float
    peak_rss: int

    def spread(self) -> str:
        return f"{self.low:.2f}-{self.high:.2f} s"


def alternated(cmds: list[list[str]], rounds: int = 3, before: Callable[[], None] | None = None) -> list[Timing]:
    """Time commands fairly against each other on a shared, noisy machine.

    One untimed warm-up round first (it brings every input into the page cache, so no command
    pays for the first read), then ``rounds`` rounds in which the commands take turns, the
    order rotating each round so none always runs right after another. ``before()`` runs
    untimed ahead of every run (e.g. flush dirty pages, remove the last output), so runs do
    not pay for each other. The median resists the odd run a neighbour's burst slowed down.
    """
    runs: list[list[Run]] = [[] for _ in cmds]
    for round_ in range(rounds + 1):
        order = list(range(len(cmds)))
        shift = round_ % len(cmds)
        for i in order[shift:] + order[:shift]:
            if before is not None:
                before()
            run = measured(cmds[i])
            if round_:
                runs[i].append(run)
    return [
        Timing(
            statistics.median(r.seconds for r in rs),
            min(r.seconds for r in rs),
            max(r.seconds for r in rs),
            statistics.median(r.cpu for r in rs),
            max(r.peak_rss for r in rs),
        )
        for rs in runs
    ]


def load() -> str:
    """The machine's load averages (1, 5, 15 min) and cores, to print beside the figures."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"
