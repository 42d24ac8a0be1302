"""Files that appear under their final name only when complete, and can resume.

``StagedSink`` is the one implementation of "temporary name, verify, then
rename" for every store; a store supplies a handful of primitives (open,
pwrite, flush, rename, small text files).

Two modes:

- **Plain**: the temporary name is random (``NAME.partial-XXXXXXXX``) and
  ``abort()`` deletes it.
- **Resumable** (``resume=`` an identity: the source, the output format and
  the writer's options): the temporary name is fixed (``NAME.imageport-partial``)
  and a sidecar ``NAME.imageport-partial.json`` records how many writes are
  durable. ``checkpoint()`` flushes and records the count. A re-run with an
  equal identity reopens the partial file and skips that many writes of the
  data phase: a deterministic writer (``RESUMABLE_FORMATS``) issues exactly the
  same writes for the same source, so those bytes are already there. Writes
  after ``end_of_data()`` (tables, headers, footers) are never skipped.
  ``abort()`` keeps a checkpointed partial file for the re-run. Because the
  skipped bytes were sent by an earlier process, a resumed sink runs its
  ``verifier`` on the finished temporary file before renaming it (every sink
  does with ``verify_always``). The identity's source part is the source's
  fingerprint (``disks.fingerprint``): a partial file written from another
  version of the source is truncated, never resumed (``stale_identity`` says
  what was found).

Neither mode ever touches the final name before ``commit()``.
"""

from __future__ import annotations

import json
import os
import uuid
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imageport.disks.base import Sink
from imageport.errors import InputError
from imageport.models import DiskFormat

PARTIAL_SUFFIX = ".imageport-partial"
STATE_SUFFIX = ".json"

# Writers whose data-phase writes depend only on the source (no randomness, no reordering).
RESUMABLE_FORMATS = frozenset({DiskFormat.RAW, DiskFormat.VHD, DiskFormat.VHD_DYNAMIC, DiskFormat.VHDX})


def partial_name(final: str) -> str:
    return final + PARTIAL_SUFFIX


def is_partial_name(name: str) -> bool:
    return name.endswith(PARTIAL_SUFFIX) or name.endswith(PARTIAL_SUFFIX + STATE_SUFFIX) or ".partial-" in name


class StagedSink(Sink):
    """A new file written under a temporary name; see the module docstring."""

    def __init__(self, final: str, display: str, overwrite: bool, resume: dict[str, Any] | None) -> None:
        self.final = final
        self.name = display
        self.identity = resume
        self.writes = 0  # data-phase writes issued so far
        self.skip = 0  # data-phase writes an earlier identical run made durable
        self.saved = False  # a checkpoint of this partial file exists
        self.in_data = True
        self.is_open = False
        self.verifier: Callable[[str], None] | None = None
        self.verify_always = False  # run the verifier on a fresh output too (``verify="full"``)
        self.stale_identity: Any = None  # an earlier run's identity whose partial file was not resumed
        if self._exists(final) and not overwrite:
            raise InputError(f"{display}: exists already (use --force to replace it)")
        self._check_parent()
        if resume is None:
            self.temp = f"{final}.partial-{uuid.uuid4().hex[:8]}"
            self._open(self.temp, "new")
        else:
            self.temp = partial_name(final)
            self.state = self.temp + STATE_SUFFIX
            saved = self._load_state()
            if saved is not None and saved.get("identity") == resume and self._exists(self.temp):
                self.skip = int(saved.get("writes", 0))
                self.saved = True
                self._open(self.temp, "existing")
            else:
                self._open(self.temp, "truncate")
                if saved is not None:
                    self.stale_identity = saved.get("identity", saved)
                    self._remove(self.state)
        self.is_open = True

    @property
    def resumed(self) -> bool:  # type: ignore[override]
        return self.skip > 0

    # --- Sink ----------------------------------------------------------------------

    def pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if self.in_data:
            self.writes += 1
            if self.writes <= self.skip:
                return  # already on the store from the interrupted run
        self._pwrite(offset, data)

    def truncate(self, size: int) -> None:
        self._truncate(size)

    def checkpoint(self) -> None:
        if self.identity is None or not self.in_data or self.writes <= self.skip:
            return
        self._flush()
        self._write_text(self.state, json.dumps({"identity": self.identity, "writes": self.writes}))
        self.saved = True

    def end_of_data(self) -> None:
        self.in_data = False

    def commit(self) -> None:
        self._flush()
        self._close()
        self.is_open = False
        if (self.resumed or self.verify_always) and self.verifier is not None:
            try:
                self.verifier(self.temp)
            except BaseException:
                self._discard()  # a partial file that does not verify is worth nothing
                raise
        self._replace(self.temp, self.final)
        if self.identity is not None and self.saved:
            self._remove(self.state)

    def abort(self) -> None:
        try:
            if self.is_open:
                self.is_open = False
                self._close(abandon=True)
        finally:
            if not self.saved:
                self._remove(self.temp)

    def _discard(self) -> None:
        self.saved = False
        self._remove(self.temp)
        if self.identity is not None:
            self._remove(self.state)

    def _load_state(self) -> dict[str, Any] | None:
        text = self._read_text(self.state)
        if text is None:
            return None
        try:
            state = json.loads(text)
        except ValueError:
            return {}  # torn by a crash: start over
        return state if isinstance(state, dict) else {}

    # --- what a store provides -----------------------------------------------------

    @abstractmethod
    def _exists(self, path: str) -> bool: ...

    @abstractmethod
    def _check_parent(self) -> None:
        """Raise ``InputError`` when the final name's folder does not exist."""

    @abstractmethod
    def _open(self, path: str, how: str) -> None:
        """``how``: "new" (must not exist), "truncate" (create or empty), "existing" (keep bytes)."""

    @abstractmethod
    def _pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None: ...

    @abstractmethod
    def _truncate(self, size: int) -> None: ...

    @abstractmethod
    def _flush(self) -> None:
        """Everything written so far is on stable storage when this returns."""

    @abstractmethod
    def _close(self, abandon: bool = False) -> None: ...

    @abstractmethod
    def _replace(self, temp: str, final: str) -> None:
        """Rename ``temp`` over ``final`` (which may exist: overwrite was allowed)."""

    @abstractmethod
    def _remove(self, path: str) -> None:
        """Delete if present."""

    @abstractmethod
    def _read_text(self, path: str) -> str | None: ...

    @abstractmethod
    def _write_text(self, path: str, text: str) -> None: ...


class LocalFileSink(StagedSink):
    """A staged file in a local directory (fsync before rename)."""

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = False, resume: dict[str, Any] | None = None):
        self.fd = -1
        super().__init__(os.fspath(path), os.fspath(path), overwrite, resume)

    def _exists(self, path: str) -> bool:
        return os.path.exists(path)

    def _check_parent(self) -> None:
        parent = Path(self.final).parent
        if not parent.is_dir():
            raise InputError(f"{parent}: no such directory")

    def _open(self, path: str, how: str) -> None:
        flags = {"new": os.O_CREAT | os.O_EXCL, "truncate": os.O_CREAT | os.O_TRUNC, "existing": 0}[how]
        self.fd = os.open(path, os.O_RDWR | flags, 0o644)

    def _pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while len(view):
            written = os.pwrite(self.fd, view, offset)
            view = view[written:]
            offset += written

    def _truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def _flush(self) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)

    def _close(self, abandon: bool = False) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _replace(self, temp: str, final: str) -> None:
        os.replace(temp, final)

    def _remove(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)

    def _read_text(self, path: str) -> str | None:
        try:
            return Path(path).read_text()
        except FileNotFoundError:
            return None

    def _write_text(self, path: str, text: str) -> None:
        Path(path).write_text(text)
