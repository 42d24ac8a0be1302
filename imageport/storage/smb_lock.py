"""Output locks, no-replace renames and listings on an SMB share (see ``imageport.disks.ownership``).

The lock is the share mode: ``NAME.imageport-lock`` is held open for writing,
sharing only read and delete, for the whole run, so the server refuses a
second writer (STATUS_SHARING_VIOLATION) -- on any client, from any host --
and drops the handle when the holder's session dies. That refusal becomes
``OutputBusy`` naming the holder from its owner record (readable while held).
A refusal caused by this process's own dropped session (its handle not yet
closed by the server) stays transient: ``StorageBusy``, worth a retry.
"""

from __future__ import annotations

import json
import posixpath
import time
from typing import Any

# smbclient (and its crypto stack) is imported inside the functions that use it: every CLI command
# imports this module, most never touch a share, and the import is a tenth of their start-up.
from smbprotocol.exceptions import SMBOSError
from smbprotocol.header import NtStatus

from imageport.disks.ownership import LOCK_SUFFIX, WAIT_POLL_SECONDS, Lock, OutputStore, Owner, busy, parse_record
from imageport.errors import StorageAccessDenied, StorageAlreadyExists, StorageBusy
from imageport.storage.smb import SmbShare
from imageport.storage.smb_errors import is_sharing_violation, translate_smb_errors

# Locks this process took and could not release (their session dropped): a refusal by one is ours.
_orphaned: set[str] = set()


def _token(text: str | bytes | None) -> str | None:
    try:
        token = json.loads(text or "").get("token")
    except (ValueError, AttributeError):
        return None
    return token if isinstance(token, str) else None


def _status(exc: BaseException) -> int | None:
    return exc.ntstatus if isinstance(exc, SMBOSError) else None


class SmbLock(Lock):
    def __init__(self, share: SmbShare, path: str, raw: Any, text: str, previous: str | None) -> None:
        self.share = share
        self.path = path
        self.raw = raw
        self.token = _token(text)
        self.previous = previous

    def release(self, keep_record: bool = False) -> None:
        raw, self.raw = self.raw, None
        if raw is None:
            return
        try:
            if not keep_record:
                self.share.remove(self.path)  # delete pending while we hold it; gone when we close
            with translate_smb_errors(f"close {self.share.display}/{self.path}"):
                raw.close()
        except BaseException:
            if self.token:
                _orphaned.add(self.token)
            raise


class SmbOutputStore(OutputStore):
    def __init__(self, share: SmbShare) -> None:
        self.share = share

    def display(self, path: str) -> str:
        return f"{self.share.display}/{path}" if path else self.share.display

    def exists(self, path: str) -> bool:
        return self.share.exists(path)

    def remove(self, path: str) -> None:
        if self.share.exists(path):
            self.share.remove(path)

    def rename(self, source: str, target: str) -> None:
        """SMB rename without replace-if-exists: the server refuses it atomically when ``target`` exists
        (Samba answers STATUS_ACCESS_DENIED rather than a name collision for some targets)."""
        try:
            self.share.rename(source, target)
        except StorageAccessDenied:
            if self.share.exists(target):
                raise StorageAlreadyExists(f"{self.display(target)}: exists already; not replaced") from None
            raise

    def listdir(self, folder: str) -> list[str]:
        return self.share.listdir(folder)

    def split(self, path: str) -> tuple[str, str]:
        return posixpath.split(path)

    def join(self, folder: str, name: str) -> str:
        return posixpath.join(folder, name) if folder else name

    def _open(self, path: str, mode: str) -> Any:
        import smbclient

        return smbclient.open_file(
            self.share.unc(path), mode=mode, buffering=0, share_access="rd", **self.share.io_options()
        )

    def _read_record(self, path: str) -> bytes | None:
        import smbclient

        try:
            with smbclient.open_file(
                self.share.unc(path), mode="rb", share_access="rwd", **self.share.io_options()
            ) as f:
                return f.read(65536)
        except SMBOSError:
            return None

    def lock(self, path: str, text: str, wait: bool) -> Lock:
        where = f"lock {self.display(path)}"
        while True:
            try:
                raw, previous = self._take(path)
            except SMBOSError as exc:
                if exc.ntstatus in (NtStatus.STATUS_DELETE_PENDING, NtStatus.STATUS_OBJECT_NAME_NOT_FOUND):
                    time.sleep(0.1)  # the holder is releasing it right now
                    continue
                if not is_sharing_violation(exc):
                    with translate_smb_errors(where):
                        raise
                found = self._read_record(path)
                if _token(found) in _orphaned:
                    raise StorageBusy(f"{where}: still held by this process's dropped session") from None
                if not wait:
                    raise busy(self.display(path).removesuffix(LOCK_SUFFIX), parse_record(found)[0]) from None
                time.sleep(WAIT_POLL_SECONDS)
                continue
            with translate_smb_errors(f"write the owner record to {self.display(path)}"):
                raw.truncate(0)
                raw.seek(0)
                raw.write(text.encode())
            return SmbLock(self.share, path, raw, text, previous)

    def _take(self, path: str) -> tuple[Any, str | None]:
        """Open the lock file for writing, sharing no write: (handle, a dead owner's record)."""
        try:
            return self._open(path, "xb"), None
        except SMBOSError as exc:
            if exc.ntstatus != NtStatus.STATUS_OBJECT_NAME_COLLISION:
                raise
        raw = self._open(path, "r+b")  # a lock file nobody holds: a dead run's
        return raw, raw.read(65536).decode("utf-8", "replace") or None

    def holder(self, path: str) -> tuple[bool, Owner | None]:
        if not self.share.exists(path):
            return False, None
        owner, _ = parse_record(self._read_record(path))
        try:
            with translate_smb_errors(f"check the lock {self.display(path)}"):
                self._open(path, "r+b").close()
        except StorageBusy:
            return True, owner
        return False, owner
