"""How every benchmark times a command: wall and CPU seconds and the command's own peak RSS; the rounds of
a command (median, spread); commands timed in turns; profiles."""

from __future__ import annotations

import collections
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


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


class Runs:
    """The measured rounds of one command: the median wall seconds (it resists the odd run a neighbour's
    burst slowed down), the spread around it, the median CPU seconds (user + system: what the command
    itself costs, whatever its neighbours do) and the highest peak RSS (MiB)."""

    def __init__(self) -> None:
        self.runs: list[Run] = []

    def add(self, run: Run) -> None:
        self.runs.append(run)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def low(self) -> float:
        return min(r.seconds for r in self.runs)

    @property
    def high(self) -> float:
        return max(r.seconds for r in self.runs)

    @property
    def spread(self) -> float:
        return self.high - self.low

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def peak(self) -> int:
        return max(r.peak_rss for r in self.runs)

    def span(self) -> str:
        return f"{self.low:.2f}-{self.high:.2f} s"


def alternated(cmds: list[list[str]], rounds: int = ROUNDS, before: Callable[[], None] | None = None) -> list[Runs]:
    """Time commands fairly against each other on a shared, noisy machine.

    One untimed warm-up round first (it brings every input into the page cache, so no command
    pays for the first read), then ``rounds`` rounds in which the commands take turns, the
    order rotating each round so none always runs right after another. ``before()`` runs
    untimed ahead of every run (e.g. flush dirty pages, remove the last output), so runs do
    not pay for each other.
    """
    runs = [Runs() for _ in cmds]
    for round_ in range(rounds + 1):
        order = list(range(len(cmds)))
        shift = round_ % len(cmds)
        for i in order[shift:] + order[:shift]:
            if before is not None:
                before()
            run = measured(cmds[i])
            if round_:
                runs[i].add(run)
    return runs


def load() -> str:
    """The machine's load averages (1, 5, 15 min) and cores, to print beside the figures."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def spread_note(*runs: Runs) -> str:
    """`median of N, spread a/b s, load L`: what a reader needs to judge a ratio."""
    spreads = "/".join(f"{r.spread:.2f}" for r in runs)
    return f"median of {len(runs[0].runs)}, spread {spreads} s, {load()}"


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
