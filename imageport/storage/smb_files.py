"""Image files on an SMB share, as the disk engine's byte sources and sinks.

smbclient's file objects send one request at a time (64 KiB buffered by
default), so throughput is one request per round trip. Here reads and writes
are split into requests of up to 4 MiB (never above the negotiated maximum)
and up to ``DEPTH`` of them are in flight at once. Each request is charged
one credit per 64 KiB; before sending we make sure the credit window can pay
for it (waiting for outstanding replies, which grant more), and each request
asks the server to widen the window to what the pipeline needs -- so the
client never runs out of credits.

A sink writes ``NAME.partial-<id>`` and renames it over ``NAME`` only on
commit; abort deletes it. The final name is never touched before then.
"""

from __future__ import annotations

import posixpath
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import smbclient

from imageport.disks.base import ByteSource, FileSystem, Sink
from imageport.errors import InputError, StorageError
from imageport.storage.smb import SmbShare
from imageport.storage.smb_errors import translate_smb_errors

PAYLOAD = 65536  # bytes per credit (SMB2 "large MTU")
IO_SIZE = 4 * 1024 * 1024
DEPTH = 4


class _Pipeline:
    """Requests in flight on one open file, in order, within the credit window."""

    def __init__(self, fd: Any, where: str) -> None:
        self.fd = fd
        self.where = where
        self.connection = fd.connection
        self.pending: deque[tuple[Any, Callable[[Any], Any], Callable[[Any], None]]] = deque()

    def io_size(self, operation: str) -> int:
        return min(IO_SIZE, getattr(self.connection, f"max_{operation}_size"))

    def _available(self) -> int:
        window = self.connection.sequence_window
        return window["high"] - window["low"]

    def send(self, message: Any, receive: Callable[[Any], Any], done: Callable[[Any], None], size: int) -> None:
        charge = (max(0, size - 1) // PAYLOAD) + 1
        while self._available() < charge and self.pending:
            self.complete_one()
        wanted = charge * DEPTH
        credit_request = charge + max(0, wanted - self._available())
        with translate_smb_errors(self.where):
            request = self.connection.send(
                message,
                sid=self.fd.tree_connect.session.session_id,
                tid=self.fd.tree_connect.tree_connect_id,
                credit_request=credit_request,
            )
        self.pending.append((request, receive, done))
        while len(self.pending) > DEPTH:
            self.complete_one()

    def complete_one(self) -> None:
        request, receive, done = self.pending.popleft()
        with translate_smb_errors(self.where):
            result = receive(request)
        done(result)

    def drain(self) -> None:
        while self.pending:
            self.complete_one()


class SmbFile(ByteSource):
    """A file on a share, read with pipelined requests."""

    def __init__(self, share: SmbShare, path: str) -> None:
        self.share = share
        self.path = f"{share.display}/{path}"
        with translate_smb_errors(f"open {self.path}"):
            self.raw = smbclient.open_file(
                share.unc(path), mode="rb", buffering=0, share_access="r", **share.io_options()
            )
        self.fd = self.raw.fd
        self.size = self.fd.end_of_file
        self.pipe = _Pipeline(self.fd, f"read {self.path}")

    def preadv(self, view: memoryview, offset: int) -> int:
        end = min(offset + len(view), self.size)
        if end <= offset:
            return 0
        step = self.pipe.io_size("read")
        got = [0]

        def landing(at: int) -> Callable[[bytes], None]:
            def store(data: bytes) -> None:
                view[at - offset : at - offset + len(data)] = data
                got[0] += len(data)

            return store

        pos = offset
        while pos < end:
            length = min(step, end - pos)
            message, receive = self.fd.read(pos, length, send=False)
            self.pipe.send(message, receive, landing(pos), length)
            pos += length
        self.pipe.drain()
        return got[0]

    def close(self) -> None:
        with translate_smb_errors(f"close {self.path}"):
            self.raw.close()


class SmbFileSink(Sink):
    """Writes a file on a share under a temporary name; renames it into place on commit."""

    def __init__(self, share: SmbShare, path: str, overwrite: bool = False) -> None:
        self.share = share
        self.final = path
        self.name = f"{share.display}/{path}"
        if share.exists(path) and not overwrite:
            raise InputError(f"{self.name}: exists already (use --force to replace it)")
        directory = posixpath.dirname(path)
        if directory and not share.exists(directory):
            raise InputError(f"{share.display}/{directory}: no such folder on the share")
        self.temp = f"{path}.partial-{uuid.uuid4().hex[:8]}"
        with translate_smb_errors(f"create {share.display}/{self.temp}"):
            self.raw = smbclient.open_file(
                share.unc(self.temp), mode="xb", buffering=0, share_access="r", **share.io_options()
            )
        self.fd = self.raw.fd
        self.pipe = _Pipeline(self.fd, f"write {share.display}/{self.temp}")
        self.open = True

    def pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        step = self.pipe.io_size("write")
        pos = 0
        while pos < len(view):
            chunk = bytes(view[pos : pos + step])  # the request owns its bytes once sent
            message, receive = self.fd.write(chunk, offset=offset + pos, send=False)
            expected = len(chunk)

            def check(written: int, expected: int = expected, at: int = offset + pos) -> None:
                if written != expected:
                    raise StorageError(f"{self.name}: short write at {at} ({written} of {expected} bytes)")

            self.pipe.send(message, receive, check, expected)
            pos += len(chunk)

    def truncate(self, size: int) -> None:
        self.pipe.drain()
        with translate_smb_errors(f"resize {self.share.display}/{self.temp}"):
            self.raw.truncate(size)

    def commit(self) -> None:
        self.pipe.drain()
        with translate_smb_errors(f"finish {self.name}"):
            self.raw.flush()
            self.raw.close()
            self.open = False
        # Samba refuses rename-with-replace from smbclient (STATUS_ACCESS_DENIED), so an existing
        # file is moved aside first and deleted only once the new one is in place.
        aside = f"{self.final}.replaced-{uuid.uuid4().hex[:8]}" if self.share.exists(self.final) else None
        if aside:
            self.share.rename(self.final, aside)
        try:
            self.share.rename(self.temp, self.final)
        except BaseException:
            if aside:
                self.share.rename(aside, self.final)
            raise
        if aside:
            self.share.remove(aside)

    def abort(self) -> None:
        try:
            if self.open:
                self.pipe.pending.clear()  # replies no longer matter; close cancels the handle
                self.raw.close()
                self.open = False
        finally:
            if self.share.exists(self.temp):
                self.share.remove(self.temp)


class SmbFileSystem(FileSystem):
    """Paths are relative to the connector's base folder on the share, '/'-separated."""

    def __init__(self, share: SmbShare) -> None:
        self.share = share
        share.connect()

    def open(self, path: str) -> ByteSource:
        return SmbFile(self.share, path)

    def isfile(self, path: str) -> bool:
        return self.share.isfile(path)

    def realpath(self, path: str) -> str:
        return posixpath.normpath(path).lower()  # SMB names are case-insensitive

    def open_sink(self, path: str, overwrite: bool = False) -> Sink:
        return SmbFileSink(self.share, path, overwrite)

    def close(self) -> None:
        self.share.close()
