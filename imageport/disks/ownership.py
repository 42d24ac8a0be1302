"""Who is writing an output: one exclusive lock per destination, held for the whole run.

Every staged output ``NAME`` (see ``imageport.disks.staged``) is written under
the lock ``NAME.imageport-lock``. The lock file holds the owner record (host,
pid, start time, run id, the temporary file it writes) and is taken before
any temporary file is created, released (deleted) after the final rename or
the cleanup. So:

- a second run on the same destination fails at once with ``OutputBusy``
  ("NAME is being written by another run (host, pid, since)"), or waits for
  the lock when asked (``--wait-lock``);
- a lock that nobody holds but that still exists was left by a dead run: the
  next run (or ``imageport clean``) takes it over and removes what that run
  left (``imageport.disks.leftovers``).

How a store makes the lock exclusive is its own business: ``flock`` on a local
file, the SMB share mode (the handle is opened without write sharing, so the
server refuses a second writer) on a share. The owner record is only what the
error message shows and what tells a run its own dropped session from another
run; liveness always comes from the store's lock itself, never from a pid.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from imageport.compat import UTC
from imageport.errors import OutputBusy

PARTIAL_SUFFIX = ".imageport-partial"  # a resumable partial file; its checkpoint sidecar adds STATE_SUFFIX
STATE_SUFFIX = ".json"
LOCK_SUFFIX = ".imageport-lock"
ASIDE_SUFFIX = ".imageport-replaced"  # the old file while a replace is half done (SMB)
WAIT_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    since: str  # ISO 8601, UTC: when this process started writing outputs
    run: str  # random per process: tells this process's own stale handle from another run

    def describe(self) -> str:
        return f"{self.host}, pid {self.pid}, since {self.since}"


_this: dict[int, Owner] = {}


def this_run() -> Owner:
    """The owner record of this process (a forked child gets its own)."""
    pid = os.getpid()
    if pid not in _this:
        since = datetime.now(UTC).isoformat(timespec="seconds")
        _this[pid] = Owner(socket.gethostname(), pid, since, uuid.uuid4().hex[:12])
    return _this[pid]


def lock_name(final: str) -> str:
    return final + LOCK_SUFFIX


def record(temp: str) -> str:
    """The text a lock file holds: this run, the temporary file it writes, a token for this lock."""
    return json.dumps({"owner": asdict(this_run()), "temp": temp, "token": uuid.uuid4().hex})


def parse_record(text: str | bytes | None) -> tuple[Owner | None, str | None]:
    """Owner and temporary file from a lock file's text; ``(None, None)`` when torn or empty."""
    try:
        data: Any = json.loads(text or "")
        owner = Owner(**data["owner"])
        temp = data.get("temp")
        return owner, temp if isinstance(temp, str) else None
    except (ValueError, TypeError, KeyError):
        return None, None


def busy(display: str, owner: Owner | None) -> OutputBusy:
    who = owner.describe() if owner else "owner record not readable yet"
    return OutputBusy(f"{display} is being written by another run ({who}); use --wait-lock to wait for it")


class Lock(ABC):
    """An acquired destination lock. ``previous`` is the record a dead owner left, if any."""

    previous: str | None = None

    @abstractmethod
    def release(self, keep_record: bool = False) -> None:
        """Delete the lock file, then let go (a waiting run then takes a fresh one). ``keep_record``:
        let go but leave the file, so a partial kept for a re-run still says whose it was."""


class OutputStore(ABC):
    """What a store provides to locks, staged replaces and cleanup. Paths are the store's own."""

    @abstractmethod
    def display(self, path: str) -> str: ...

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def remove(self, path: str) -> None:
        """Delete if present."""

    @abstractmethod
    def rename(self, source: str, target: str) -> None:
        """Rename; never replaces an existing ``target`` (``StorageAlreadyExists``)."""

    @abstractmethod
    def listdir(self, folder: str) -> list[str]: ...

    @abstractmethod
    def split(self, path: str) -> tuple[str, str]:
        """(folder, name)."""

    @abstractmethod
    def join(self, folder: str, name: str) -> str: ...

    @abstractmethod
    def lock(self, path: str, text: str, wait: bool) -> Lock:
        """Take the lock file ``path`` exclusively and write ``text`` into it.

        Held by a live run: ``OutputBusy`` at once, or block until it is free when ``wait``.
        """

    @abstractmethod
    def holder(self, path: str) -> tuple[bool, Owner | None]:
        """Whether a live run holds lock ``path`` now, and its owner record (``None`` if unreadable).
        A lock file nobody holds was left by a dead run."""
