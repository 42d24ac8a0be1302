"""Run ids for work started outside Prefect (a plain CLI run), and whether that run is still alive.

A Prefect flow run has a UUID and Prefect knows its state. A CLI run has none,
so it is named after its process: ``cli-HOST-PID-START`` (``START``: the
process's start time in clock ticks since boot, so a reused pid is not taken
for the old run). On its own host such a run is alive exactly while that
process is; on another host nobody can tell (``None``).
"""

from __future__ import annotations

import os
import socket

# Tags that name the run (and stage) that made a cloud resource: one definition, beside the tag rules.
from imageport.models.fields import RUN_TAG, STAGE_TAG

__all__ = ["RUN_TAG", "STAGE_TAG", "process_run_id", "process_run_is_live", "start_ticks"]

PREFIX = "cli-"


def start_ticks(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22 (starttime), counted after "(comm)"


def process_run_id() -> str:
    """The run id of this process."""
    return f"{PREFIX}{socket.gethostname()}-{os.getpid()}-{start_ticks(os.getpid()) or 0}"


def process_run_is_live(run_id: str) -> bool | None:
    """True/False for a CLI run of this host; None for any other run id (ask Prefect, or nobody can tell)."""
    if not run_id.startswith(PREFIX):
        return None
    parts = run_id[len(PREFIX) :].rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit() or parts[0] != socket.gethostname():
        return None
    return start_ticks(int(parts[1])) == parts[2]
