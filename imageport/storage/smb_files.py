"""Image files on an SMB share, as the disk engine's byte sources and sinks.

smbclient's file objects send one request at a time (64 KiB buffered by
default), so throughput is one request per round trip. Here reads and writes
are split into requests of up to 4 MiB (never above the negotiated maximum)
and up to ``DEPTH`` of them are in flight at once. Each request is charged
one credit per 64 KiB; before sending we make sure the credit window can pay
for it (waiting for outstanding replies, which grant more), and each request
asks the server to widen the window to what the pipeline needs -- so the
client never runs out of credits.

Sinks are ``StagedSink``s: a temporary name renamed over ``NAME`` only on
commit, resumable when asked (checkpoints flush with SMB2 FLUSH and keep their
count in a small sidecar file on the share, so any worker can resume).
"""

from __future__ import annotations

import contextlib
import functools
import posixpath
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# smbclient (and its crypto stack) is imported inside the functions that use it: every CLI command
# imports this module, most never touch a share, and the import is a tenth of their start-up.
from imageport.disks.io import ByteSource, FileSystem, Sink, refuse_empty
from imageport.disks.ownership import ASIDE_SUFFIX, OutputStore
from imageport.disks.staged import StagedSink
from imageport.errors import InputError, StorageError
from imageport.storage.smb import SmbShare
from imageport.storage.smb_errors import translate_smb_errors
from imageport.storage.smb_lock import SmbOutputStore
from imageport.storage.smb_wire import fast_receive, read_reply, send_write, zero_copy_capable

PAYLOAD = 65536  # bytes per credit (SMB2 "large MTU")
IO_SIZE = 4 * 1024 * 1024
DEPTH = 4
READ_AHEAD = 8 * 1024 * 1024  # asked for beyond a sequential read, so the wire never idles while the caller writes


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
        """Send a request smbprotocol packed (``message``) within the credit window."""

        def issue(credit_request: int) -> Any:
            return self.connection.send(
                message,
                sid=self.fd.tree_connect.session.session_id,
                tid=self.fd.tree_connect.tree_connect_id,
                credit_request=credit_request,
            )

        self.issue(issue, receive, done, size)

    def issue(
        self, send: Callable[[int], Any], receive: Callable[[Any], Any], done: Callable[[Any], None], size: int
    ) -> None:
        """Put a request on the wire with ``send(credit_request)`` once the window can pay for it."""
        charge = (max(0, size - 1) // PAYLOAD) + 1
        while self._available() < charge and self.pending:
            self.complete_one()
        wanted = charge * DEPTH
        credit_request = charge + max(0, wanted - self._available())
        with translate_smb_errors(self.where):
            request = send(credit_request)
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


@dataclass
class _Reply:
    """One READ on the wire: where it starts, how much it asked, the payload once it lands."""

    start: int
    length: int
    data: memoryview | None = None

    def land(self, data: memoryview) -> None:
        self.data = data


class SmbFile(ByteSource):
    """A file on a share, read with pipelined requests (and read-ahead while reads are sequential)."""

    def __init__(self, share: SmbShare, path: str) -> None:
        import smbclient

        self.share = share
        self.path = f"{share.display}/{path}"
        with translate_smb_errors(f"open {self.path}"):
            self.raw = smbclient.open_file(
                share.unc(path), mode="rb", buffering=0, share_access="r", **share.io_options()
            )
        self.fd = self.raw.fd
        fast_receive(self.fd.connection)
        self.size = self.fd.end_of_file
        if self.size == 0:
            self.close()
            refuse_empty(self.path, self.size)
        self.pipe = _Pipeline(self.fd, f"read {self.path}")
        self.next_offset = -1
        self.ahead: deque[_Reply] = deque()  # READs sent, ascending and contiguous

    def _request(self, start: int, length: int) -> None:
        part = _Reply(start, length)
        message, _ = self.fd.read(start, length, send=False)
        self.pipe.send(message, functools.partial(read_reply, self.fd), part.land, length)
        self.ahead.append(part)

    def preadv(self, view: memoryview, offset: int) -> int:
        end = min(offset + len(view), self.size)
        if end <= offset:
            return 0
        if offset != self.next_offset:  # not where the last read ended: no read-ahead is of use
            self.pipe.drain()
            self.ahead.clear()
        # While reads are sequential the next READ_AHEAD bytes are asked for before this read
        # returns, so replies keep arriving while the caller writes what it got.
        limit = min(self.size, end + READ_AHEAD) if offset == self.next_offset else end
        self.next_offset = end
        step = self.pipe.io_size("read")
        pos = offset
        while pos < end:
            tail = self.ahead[-1].start + self.ahead[-1].length if self.ahead else pos
            while tail < limit:  # the pipeline keeps at most DEPTH on the wire, completing the oldest
                self._request(tail, min(step, limit - tail))
                tail += self.ahead[-1].length
            part = self.ahead[0]
            while part.data is None:
                self.pipe.complete_one()
            stop = min(end, part.start + len(part.data))
            view[pos - offset : stop - offset] = part.data[pos - part.start : stop - part.start]
            pos = max(pos, stop)
            if pos >= part.start + len(part.data):
                self.ahead.popleft()
            if len(part.data) < part.length:  # the file ended early (it shrank since it was opened)
                self.pipe.drain()
                self.ahead.clear()
                break
        return pos - offset

    def stamp(self) -> dict[str, int | str]:
        """Size, last-write and change times (100 ns units) and the server's file id (FileInternalInformation)."""
        from smbclient._io import SMBFileTransaction, query_info
        from smbprotocol.file_info import FileBasicInformation, FileInternalInformation, FileStandardInformation

        with translate_smb_errors(f"query {self.path}"), SMBFileTransaction(self.raw) as transaction:
            query_info(transaction, FileBasicInformation)
            query_info(transaction, FileInternalInformation)
            query_info(transaction, FileStandardInformation)
        basic, internal, standard = transaction.results
        return {
            "size": standard["end_of_file"].get_value(),
            "last_write": _filetime(basic["last_write_time"]),
            "change": _filetime(basic["change_time"]),
            "file_id": internal["index_number"].get_value(),
        }

    def close(self) -> None:
        if hasattr(self, "pipe"):
            with contextlib.suppress(StorageError):  # read-ahead nobody will use: its replies, not its errors
                self.pipe.drain()
            self.ahead.clear()
        with translate_smb_errors(f"close {self.path}"):
            self.raw.close()


def _filetime(field: Any) -> int:
    """A FILETIME as its 100 ns count."""
    raw = field.get_value()
    return raw if isinstance(raw, int) else int.from_bytes(field.pack(), "little")


class SmbFileSink(StagedSink):
    """A staged file on a share (see ``StagedSink``), written with pipelined requests."""

    def __init__(
        self,
        share: SmbShare,
        path: str,
        overwrite: bool = False,
        resume: dict[str, Any] | None = None,
        wait_lock: bool = False,
    ) -> None:
        self.share = share
        self.raw: Any = None
        self.store = SmbOutputStore(share)
        super().__init__(path, f"{share.display}/{path}", overwrite, resume, wait_lock)

    def _exists(self, path: str) -> bool:
        return self.share.exists(path)

    def _kind(self, path: str) -> str | None:
        if not self.share.exists(path):
            return None
        return "file" if self.share.isfile(path) else "directory"

    def _check_parent(self) -> None:
        directory = posixpath.dirname(self.final)
        if directory and not self.share.exists(directory):
            raise InputError(f"{self.share.display}/{directory}: no such folder on the share")

    def _open(self, path: str, how: str) -> None:
        import smbclient

        mode = {"new": "xb", "truncate": "wb", "existing": "r+b"}[how]
        with translate_smb_errors(f"open {self.share.display}/{path} for writing"):
            # share_access "r": readers may look, a second writer (another run) is refused
            self.raw = smbclient.open_file(
                self.share.unc(path), mode=mode, buffering=0, share_access="r", **self.share.io_options()
            )
        self.fd = self.raw.fd
        self.pipe = _Pipeline(self.fd, f"write {self.share.display}/{path}")

    def _pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        step = self.pipe.io_size("write")
        direct = zero_copy_capable(self.fd)
        pos = 0
        while pos < len(view):
            chunk = view[pos : pos + step]
            expected = len(chunk)

            def check(written: int, expected: int = expected, at: int = offset + pos) -> None:
                if written != expected:
                    raise StorageError(f"{self.name}: short write at {at} ({written} of {expected} bytes)")

            if direct:  # the payload is in the socket buffer once sent: no copy, the caller may reuse it
                send = functools.partial(send_write, self.fd, offset + pos, chunk)
                self.pipe.issue(send, self.fd._write_response, check, expected)
            else:  # encrypted: smbprotocol packs (and owns) the bytes
                message, receive = self.fd.write(bytes(chunk), offset=offset + pos, send=False)
                self.pipe.send(message, receive, check, expected)
            pos += expected

    def _truncate(self, size: int) -> None:
        self.pipe.drain()
        with translate_smb_errors(f"resize {self.share.display}/{self.temp}"):
            self.raw.truncate(size)

    def _flush(self) -> None:
        self.pipe.drain()
        with translate_smb_errors(f"flush {self.share.display}/{self.temp}"):
            self.raw.flush()  # SMB2 FLUSH: the server puts the bytes on stable storage

    def _close(self, abandon: bool = False) -> None:
        if self.raw is None:
            return
        raw, self.raw = self.raw, None
        if abandon:
            self.pipe.pending.clear()  # replies no longer matter; close cancels the handle
            with contextlib.suppress(Exception):  # the session may be gone; the handle dies with it
                raw.close()
            return
        with translate_smb_errors(f"close {self.share.display}/{self.temp}"):
            raw.close()

    def _replace(self, temp: str, final: str, overwrite: bool) -> None:
        if not overwrite:
            self.store.rename(temp, final)  # no replace-if-exists: a file that appeared meanwhile stays
            return
        # Samba refuses rename-with-replace from smbclient (STATUS_ACCESS_DENIED), so an existing file
        # is moved aside first and deleted only once the new one is in place. A run killed in between
        # leaves NAME.imageport-replaced, which the next run or 'imageport clean' renames back.
        aside = final + ASIDE_SUFFIX
        moved = self.share.exists(final)
        if moved:
            self.store.rename(final, aside)
        try:
            self.store.rename(temp, final)
        except BaseException:
            if moved:
                self.store.rename(aside, final)
            raise
        if moved:
            self.share.remove(aside)

    def _remove(self, path: str) -> None:
        try:
            if self.share.exists(path):
                self.share.remove(path)
        except StorageError:
            if self.saved:
                raise
            # cleaning up after a failure (e.g. a dropped session): the partial name says what it is

    def _read_text(self, path: str) -> str | None:
        if not self.share.exists(path):
            return None
        return self.share.read_bytes(path).decode("utf-8", "replace")

    def _write_text(self, path: str, text: str) -> None:
        self.share.write_bytes(path, text.encode())


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

    def open_sink(
        self, path: str, overwrite: bool = False, resume: dict[str, Any] | None = None, wait_lock: bool = False
    ) -> Sink:
        return SmbFileSink(self.share, path, overwrite, resume, wait_lock)

    def output_store(self) -> OutputStore:
        return SmbOutputStore(self.share)

    def reconnect(self) -> None:
        self.share.close()
        self.share.connect()

    def close(self) -> None:
        self.share.close()
