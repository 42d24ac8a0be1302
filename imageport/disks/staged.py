"""Files that appear under their final name only when complete, and can resume.

``StagedSink`` is the one implementation of "temporary name, verify, then
rename" for every store; a store supplies a handful of primitives (open,
pwrite, flush, rename, small text files) and an ``OutputStore`` (locks,
listing; see ``imageport.disks.ownership``).

Ownership: before any temporary file exists the sink takes the output's lock
(``NAME.imageport-lock``, with the owner record: host, pid, start time) and
holds it until the final rename or the cleanup. A second run on the same
output fails at once with ``OutputBusy`` -- or waits, ``wait_lock=True``. Right
after taking the lock it removes what dead runs left for the same output
(``imageport.disks.leftovers.recover``). The final rename never replaces a file
that appeared meanwhile unless ``overwrite`` was given (``RENAME_NOREPLACE``
locally, a rename without replace-if-exists on a share); a directory, device
node or FIFO is never written over, not even with ``overwrite``.

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
  ``abort()`` keeps a checkpointed partial file for the re-run when the run was
  interrupted (a transient error, Ctrl-C); an error the run handled (a full
  disk, a refused rename, bad input) removes it. Because the skipped bytes were
  sent by an earlier process, a resumed sink runs its ``verifier`` on the
  finished temporary file before renaming it (every sink does with
  ``verify_always``). The identity's source part is the source's fingerprint
  (``disks.fingerprint``): a partial file written from another version of the
  source is truncated, never resumed (``stale_identity`` says what was found).

Neither mode ever touches the final name before ``commit()``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import uuid
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

from imageport.disks.io import Sink
from imageport.disks.leftovers import recover
from imageport.disks.os_errors import os_error
from imageport.disks.ownership import (
    PARTIAL_SUFFIX,
    STATE_SUFFIX,
    Lock,
    OutputStore,
    lock_name,
    record,
)
from imageport.errors import ImageportError, InputError, StorageAlreadyExists
from imageport.models import DiskFormat
from imageport.redaction import redact_data

__all__ = ["PARTIAL_SUFFIX", "RESUMABLE_FORMATS", "STATE_SUFFIX", "StagedSink", "partial_name"]

# Writers whose data-phase writes depend only on the source (no randomness, no reordering).
RESUMABLE_FORMATS = frozenset({DiskFormat.RAW, DiskFormat.VHD, DiskFormat.VHD_DYNAMIC, DiskFormat.VHDX})


def partial_name(final: str) -> str:
    return final + PARTIAL_SUFFIX


def is_partial_name(name: str) -> bool:
    from imageport.disks.leftovers import output_of

    return output_of(name) is not None


class StagedSink(Sink):
    """A new file written under a temporary name; see the module docstring."""

    store: OutputStore  # set by the store's subclass before ``__init__``

    def __init__(
        self, final: str, display: str, overwrite: bool, resume: dict[str, Any] | None, wait_lock: bool = False
    ) -> None:
        self.final = final
        self.name = display
        self.identity = redact_data(resume)  # it goes into a sidecar file beside the image
        self.overwrite = overwrite
        self.writes = 0  # data-phase writes issued so far
        self.skip = 0  # data-phase writes an earlier identical run made durable
        self.saved = False  # a checkpoint of this partial file exists
        self.in_data = True
        self.is_open = False
        self.lock: Lock | None = None
        self.verifier: Callable[[str], None] | None = None
        self.verify_always = False  # run the verifier on a fresh output too (``verify="full"``)
        self.stale_identity: Any = None  # an earlier run's identity whose partial file was not resumed
        self._refuse_unwritable(final, display)
        if self._exists(final) and not overwrite:
            raise InputError(f"{display}: exists already (use --force to replace it)")
        self._check_parent()
        self.temp = f"{final}.partial-{uuid.uuid4().hex[:8]}" if resume is None else partial_name(final)
        self.state = self.temp + STATE_SUFFIX
        self.lock = self.store.lock(lock_name(final), record(self.temp), wait_lock)
        try:
            recover(self.store, final, keep=self.temp if resume is not None else None)
            if not overwrite and self._exists(final):  # e.g. a half-done replace was just rolled back
                raise InputError(f"{display}: exists already (use --force to replace it)")
            self._start(resume)
        except BaseException:
            self._cleanup()
            raise
        self.is_open = True

    def _start(self, resume: dict[str, Any] | None) -> None:
        if resume is None:
            self._open(self.temp, "new")
            return
        saved = self._load_state()
        if saved is not None and saved.get("identity") == self.identity and self._exists(self.temp):
            self.skip = int(saved.get("writes", 0))
            self.saved = True
            self._open(self.temp, "existing")
        else:
            self._open(self.temp, "truncate")
            if saved is not None:
                self.stale_identity = saved.get("identity", saved)
                self._remove(self.state)

    def _refuse_unwritable(self, final: str, display: str) -> None:
        kind = self._kind(final)
        if kind == "directory":
            raise os_error(display, "write the output", IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
        if kind not in (None, "file"):
            raise InputError(f"{display}: is a {kind}, not a regular file; never written over, even with --force")

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
        if self.overwrite:
            self._refuse_unwritable(self.final, self.name)
        try:
            self._replace(self.temp, self.final, self.overwrite)
        except StorageAlreadyExists:
            raise StorageAlreadyExists(
                f"{self.name}: appeared while this run was writing it; not replaced (use --force to replace it)"
            ) from None
        if self.identity is not None and self.saved:
            self._remove(self.state)
        self._release()

    def abort(self) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        """After a failure: drop the temporary file unless it is kept for a re-run; let go of the lock.
        Best effort while an error is on its way (that error is the one to report)."""
        failing = sys.exception() is not None
        keep = self._keep_partial()
        try:
            with contextlib.suppress(ImageportError) if failing else contextlib.nullcontext():
                if self.is_open:
                    self.is_open = False
                    self._close(abandon=True)
                if not keep:
                    self._discard()
        finally:
            with contextlib.suppress(ImageportError) if failing else contextlib.nullcontext():
                self._release(keep_record=keep)  # a kept partial keeps its owner record beside it

    def _keep_partial(self) -> bool:
        """A checkpointed partial survives an interruption; an error this run handled removes it."""
        if not self.saved:
            return False
        error = sys.exception()
        return not (isinstance(error, ImageportError) and not error.transient)

    def _release(self, keep_record: bool = False) -> None:
        lock, self.lock = self.lock, None
        if lock is not None:
            lock.release(keep_record)

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
    def _kind(self, path: str) -> str | None:
        """``None`` (absent), "file" (a regular file), or what else it is ("directory", "FIFO", ...)."""

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
    def _replace(self, temp: str, final: str, overwrite: bool) -> None:
        """Rename ``temp`` to ``final``: over an existing ``final`` only when ``overwrite``,
        else ``StorageAlreadyExists`` -- atomically, never check-then-rename."""

    @abstractmethod
    def _remove(self, path: str) -> None:
        """Delete if present."""

    @abstractmethod
    def _read_text(self, path: str) -> str | None: ...

    @abstractmethod
    def _write_text(self, path: str, text: str) -> None: ...
