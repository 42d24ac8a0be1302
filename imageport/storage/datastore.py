"""Files on a vSphere datastore over HTTPS ``/folder``: ranged, parallel reads; whole-file writes.

``https://HOST/folder/PATH?dcPath=DATACENTER&dsName=DATASTORE`` serves a
datastore file with ``Range`` (206) and accepts a whole file by ``PUT``; the
vSphere session cookie authorises both. A VMDK's descriptor and its extents
are siblings, so the disk engine opens a flat or sparse VMDK through this
file system exactly as it would locally.

Reads are split into ``PART``-sized ranged GETs sent in parallel (one HTTP
session per worker thread), with read-ahead while reads are sequential,
because one HTTPS stream from an ESXi host is far slower than the link. There are no ranged writes on this
endpoint: ``put`` sends small whole files such as descriptors, and a sink
(``DatastoreUploadSink``) streams a file front to back in one PUT, for the
vSphere import (which names, verifies and moves it into place).

The platform layer (``platforms/vsphere``) builds this from a logged-in
session; this module knows only URLs, a cookie and TLS settings.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from imageport.disks.extents import MiB, ZERO_4MiB
from imageport.disks.io import ByteSource, FileSystem, Sink
from imageport.errors import InputError, StorageUnreachable
from imageport.retry import RetryPolicy
from imageport.storage.datastore_errors import check_status, translate_datastore_errors

PART = 4 * MiB
WORKERS = 4
AHEAD = 6  # parts requested ahead while reads are sequential
TIMEOUT = (10, 120)  # connect, read: seconds
# A dropped range: each retry asks for what is still missing, so progress never repeats.
RANGE_RESUME = RetryPolicy(attempts=5, first_delay=0.2, backoff=2.0, max_delay=5.0, deadline=60.0)


@dataclass(frozen=True)
class DatastoreLocation:
    """Where and how: the host's base URL, datacenter and datastore, the session cookie, TLS trust."""

    base_url: str  # https://vcenter:443
    datacenter: str
    datastore: str
    cookie: str | None = None  # vSphere session cookie header value
    verify: bool | str = True  # True, False (labs), or a CA bundle path
    thumbprint: str | None = None  # pin the server certificate (SHA-1, AA:BB:...) instead of CA trust

    @property
    def display(self) -> str:
        return f"[{self.datastore}]"


class _PinnedAdapter(HTTPAdapter):
    """Accept exactly the certificate with this fingerprint (what vSphere shows admins)."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_fingerprint"] = self.fingerprint
        super().init_poolmanager(*args, **kwargs)


class DatastoreFileSystem(FileSystem):
    """Paths are datastore paths without the ``[datastore]`` prefix, e.g. ``gold/gold.vmdk``."""

    def __init__(self, location: DatastoreLocation, remove: Callable[[str], None] | None = None) -> None:
        self.location = location
        self.remove = remove  # deletes a datastore file (the platform's FileManager); enables sinks
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="datastore-read")
        self._count_lock = threading.Lock()
        self.fetched = 0  # body bytes received (the bench counts what a sparse disk costs)
        self.resumed = 0  # ranges resumed after a dropped connection

    def url(self, path: str) -> str:
        query = urllib.parse.urlencode({"dcPath": self.location.datacenter, "dsName": self.location.datastore})
        return f"{self.location.base_url}/folder/{urllib.parse.quote(path.lstrip('/'))}?{query}"

    def session(self) -> requests.Session:
        """One HTTP session per thread (requests sessions are not thread-safe)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # a CA bundle from the environment must not override this trust choice
            if self.location.thumbprint:
                session.verify = False
                session.mount("https://", _PinnedAdapter(self.location.thumbprint.replace(":", "").lower()))
            else:
                session.verify = self.location.verify
            if self.location.cookie:
                session.headers["Cookie"] = self.location.cookie
            self._local.session = session
        return session

    def where(self, path: str) -> str:
        return f"{self.location.display} {path}"

    # --- FileSystem ------------------------------------------------------------------

    def open(self, path: str) -> ByteSource:
        return DatastoreFile(self, path)

    def isfile(self, path: str) -> bool:
        with translate_datastore_errors(f"stat {self.where(path)}"):
            response = self.session().head(self.url(path), timeout=TIMEOUT)
        if response.status_code == 404 or 300 <= response.status_code < 400:
            return False  # a folder redirects to its listing
        check_status(response, f"stat {self.where(path)}")
        return "text/html" not in response.headers.get("Content-Type", "")  # ...which is HTML

    def open_sink(
        self, path: str, overwrite: bool = False, resume: dict[str, Any] | None = None, wait_lock: bool = False
    ) -> Sink:
        """A streaming upload (front-to-back writers only); the vSphere import names the file and moves it."""
        if self.remove is None:
            raise InputError(f"{self.where(path)}: images are written to a datastore by the vSphere import")
        if resume is not None:
            raise InputError(f"{self.where(path)}: a streamed datastore upload cannot be resumed")
        if wait_lock:
            # A datastore has no lock a second writer would see; accepting the flag would promise one.
            raise InputError(f"{self.where(path)}: --wait-lock (wait_lock): a datastore upload takes no output lock")
        if not overwrite and self.isfile(path):
            raise InputError(f"{self.where(path)}: exists already (use --force to replace it)")
        return DatastoreUploadSink(self, path, self.remove)

    def put(self, path: str, data: bytes) -> None:
        """Write a whole (small) file, e.g. a VMDK descriptor."""
        with translate_datastore_errors(f"write {self.where(path)}"):
            response = self.session().put(
                self.url(path), data=data, headers={"Content-Type": "application/octet-stream"}, timeout=TIMEOUT
            )
        check_status(response, f"write {self.where(path)}")

    def get_range(self, path: str, offset: int, length: int) -> bytes:
        """The bytes of ``[offset, offset + length)`` (fewer at the end of the file)."""
        buf = bytearray(length)
        return bytes(memoryview(buf)[: self.read_into(path, offset, memoryview(buf))])

    def read_into(self, path: str, offset: int, view: memoryview) -> int:
        """Fill ``view`` from ``offset`` with one ranged GET; returns the bytes read (short only at the end).

        A connection that drops mid-range is resumed alone: the next GET asks for what is
        still missing (``bytes=OFFSET+GOT-END``) on a new connection, under ``RANGE_RESUME``,
        so one dropped range costs its own remainder, not a re-run of the whole copy.
        """
        got = [0]

        def fetch() -> None:
            self._fetch(path, offset, view, got)

        def fresh_connection() -> None:
            self.resumed += 1
            session = getattr(self._local, "session", None)
            if session is not None:
                session.close()  # the broken connection must not be reused
                self._local.session = None

        RANGE_RESUME.run(fetch, retry_on=lambda exc: isinstance(exc, StorageUnreachable), before_retry=fresh_connection)
        return got[0]

    def _fetch(self, path: str, offset: int, view: memoryview, got: list[int]) -> None:
        """Read the response body straight into ``view[got:]``, adding to ``got[0]`` as bytes land."""
        start, end = offset + got[0], offset + len(view) - 1
        where = f"read {self.where(path)} at {start}"
        with translate_datastore_errors(where):
            response = self.session().get(
                self.url(path), headers={"Range": f"bytes={start}-{end}"}, timeout=TIMEOUT, stream=True
            )
            complete = False
            try:
                check_status(response, where)
                remaining = response.raw.length_remaining or 0
                if response.status_code != 206 and not (start == 0 and remaining <= len(view)):
                    raise InputError(f"{where}: the server ignored the byte range (HTTP {response.status_code})")
                wanted = min(len(view), got[0] + remaining)
                # http.client's readinto fills our buffer from the TLS socket with no intermediate bytes
                # objects; requests' .content reads 10 KiB chunks and joins them (twice the CPU per byte).
                body = response.raw._fp
                while got[0] < wanted:
                    n = body.readinto(view[got[0] : wanted])
                    if not n:
                        raise StorageUnreachable(f"{where}: the body ended {wanted - got[0]} bytes short")
                    got[0] += n
                    with self._count_lock:
                        self.fetched += n
                complete = True
            finally:
                if complete:
                    response.raw.release_conn()  # the body is consumed: the connection serves the next range
                else:
                    response.close()

    def size(self, path: str) -> int:
        return int(self.head(path)["size"])

    def head(self, path: str) -> dict[str, int | str]:
        """Size and version (``Last-Modified``, ``ETag`` where the host sends them) of a file."""
        where = f"stat {self.where(path)}"
        with translate_datastore_errors(where):
            response = self.session().head(self.url(path), timeout=TIMEOUT)
        check_status(response, where)
        found: dict[str, int | str] = {"size": int(response.headers.get("Content-Length", 0))}
        for header in ("Last-Modified", "ETag"):
            if header in response.headers:
                found[header.lower()] = response.headers[header]
        return found

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@dataclass
class _Part:
    """One ranged GET requested ahead: where it starts, the buffer it lands in, its byte count to come."""

    start: int
    view: memoryview
    buf: bytearray
    future: Future[int]


class DatastoreFile(ByteSource):
    """A datastore file read in ranged GETs of up to ``PART`` bytes on the pool.

    A read that continues where the last one ended is *sequential*: the next ``AHEAD``
    parts are requested at once into reused buffers, so a few connections each carry a
    bounded range while the disk engine consumes the first. Any other read (a sparse
    disk's scattered grains, a header) fetches exactly what it asks, straight into the
    caller's buffer, and drops the read-ahead. Memory: at most ``AHEAD + 1`` part buffers.
    """

    def __init__(self, fs: DatastoreFileSystem, path: str) -> None:
        self.fs = fs
        self.path = fs.where(path)
        self.name = path
        self.head = fs.head(path)
        self.size = int(self.head["size"])
        self.next_offset = -1
        self.ahead: deque[_Part] = deque()  # contiguous parts, ascending; the first may be partly consumed
        self.spare: list[bytearray] = []  # part buffers no request is writing into
        self.lock = threading.Lock()

    def stamp(self) -> dict[str, int | str]:
        return dict(self.head)

    def _request(self, start: int) -> _Part:
        buf = self.spare.pop() if self.spare else bytearray(PART)
        view = memoryview(buf)[: min(PART, self.size - start)]
        return _Part(start, view, buf, self.fs._pool.submit(self.fs.read_into, self.name, start, view))

    def _recycle(self, part: _Part) -> None:
        if part.future.cancel() or part.future.done():  # a request still running keeps its buffer
            self.spare.append(part.buf)

    def _drop_ahead(self) -> None:
        while self.ahead:
            self._recycle(self.ahead.popleft())

    def _top_up(self, pos: int) -> None:
        if not self.ahead:
            self.ahead.append(self._request(pos))
        while len(self.ahead) <= AHEAD:
            last = self.ahead[-1]
            tail = last.start + len(last.view)
            if tail >= self.size:
                return
            self.ahead.append(self._request(tail))

    def preadv(self, view: memoryview, offset: int) -> int:
        end = min(offset + len(view), self.size)
        if end <= offset:
            return 0
        with self.lock:
            sequential = offset == self.next_offset
            self.next_offset = end
            if not sequential:
                self._drop_ahead()
                read = functools.partial(self.fs.read_into, self.name)
                parts = [
                    self.fs._pool.submit(read, p, view[p - offset : min(p + PART, end) - offset])
                    for p in range(offset, end, PART)
                ]
                return sum(future.result() for future in parts)
            pos = offset
            while pos < end:
                self._top_up(pos)
                part = self.ahead[0]
                arrived = part.future.result()
                stop = min(end, part.start + arrived)
                view[pos - offset : stop - offset] = part.view[pos - part.start : stop - part.start]
                pos = max(pos, stop)
                if pos >= part.start + len(part.view) or arrived < len(part.view):
                    self._recycle(self.ahead.popleft())
                if arrived < len(part.view) and pos >= part.start + arrived:
                    self._drop_ahead()
                    break  # the file ended early (it shrank since its size was read)
            return pos - offset


class DatastoreUploadSink(Sink):
    """A new datastore file sent as one streaming PUT (the endpoint has no ranged writes).

    Writes must come in ascending order; gaps are sent as zeros. Suits the writers that
    produce a file front to back (raw/flat, streamOptimized VMDK). ``abort`` stops the
    upload and calls ``remove`` to delete what arrived (the HTTP endpoint cannot delete).
    """

    def __init__(
        self, fs: DatastoreFileSystem, path: str, remove: Callable[[str], None], size: int | None = None
    ) -> None:
        self.fs = fs
        self.path = path
        self.name = fs.where(path)
        self.remove = remove
        self.pos = 0
        self.size = 0  # the file's final length, at least
        self.error: BaseException | None = None
        self.chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)  # a known size streams without chunked encoding
        self.thread = threading.Thread(target=self._send, args=(headers,), name="datastore-put", daemon=True)
        self.thread.start()

    def _body(self) -> Iterator[bytes]:
        while True:
            item = self.chunks.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item  # aborts the request mid-body
            yield item

    def _send(self, headers: dict[str, str]) -> None:
        where = f"upload {self.name}"
        try:
            with translate_datastore_errors(where):
                response = self.fs.session().put(
                    self.fs.url(self.path), data=self._body(), headers=headers, timeout=TIMEOUT
                )
            check_status(response, where)
        except BaseException as exc:  # surfaced by the writer's next call
            self.error = exc
            while True:  # unblock a writer waiting on a full queue
                try:
                    self.chunks.get_nowait()
                except queue.Empty:
                    break

    def _put(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        while True:
            try:
                self.chunks.put(data, timeout=1)
                return
            except queue.Full:
                if self.error is not None or not self.thread.is_alive():
                    raise self.error or InputError(f"{self.name}: the upload stopped") from None

    def _zeros(self, length: int) -> None:
        while length > 0:
            n = min(length, len(ZERO_4MiB))
            self._put(ZERO_4MiB[:n])
            length -= n

    def pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if offset < self.pos:
            raise InputError(f"{self.name}: out-of-order write at {offset} (sent up to {self.pos})")
        self._zeros(offset - self.pos)
        self._put(bytes(data))
        self.pos = offset + len(data)
        self.size = max(self.size, self.pos)

    def truncate(self, size: int) -> None:
        # Only the final length is known here; the zeros go out when the writes get there.
        if size < self.pos:
            raise InputError(f"{self.name}: cannot shrink a streamed upload to {size} (sent {self.pos})")
        self.size = size

    def commit(self) -> None:
        self._zeros(self.size - self.pos)
        self.pos = max(self.pos, self.size)
        self._put_end(None)
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        self._put_end(InputError(f"{self.name}: upload abandoned"))
        self.remove(self.path)

    def _put_end(self, item: BaseException | None) -> None:
        if self.thread.is_alive():
            with contextlib.suppress(queue.Full):
                self.chunks.put(item, timeout=30)
            self.thread.join(timeout=300)
