"""Files on a vSphere datastore over HTTPS ``/folder``: ranged, parallel reads; whole-file writes.

``https://HOST/folder/PATH?dcPath=DATACENTER&dsName=DATASTORE`` serves a
datastore file with ``Range`` (206) and accepts a whole file by ``PUT``; the
vSphere session cookie authorises both. A VMDK's descriptor and its extents
are siblings, so the disk engine opens a flat or sparse VMDK through this
file system exactly as it would locally.

Reads of more than ``PART`` bytes are split into ranged GETs sent in
parallel (one HTTP session per worker thread), because one HTTPS stream from
an ESXi host is far slower than the link. There are no ranged writes on this
endpoint: images are written to a datastore by the vSphere import (a lease),
and ``put`` sends small whole files such as descriptors.

The platform layer (``platforms/vsphere``) builds this from a logged-in
session; this module knows only URLs, a cookie and TLS settings.
"""

from __future__ import annotations

import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from imageport.disks.base import ByteSource, FileSystem, MiB, Sink
from imageport.errors import InputError
from imageport.storage.datastore_errors import check_status, translate_datastore_errors

PART = 1 * MiB
WORKERS = 4
TIMEOUT = (10, 120)  # connect, read: seconds


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

    def __init__(self, location: DatastoreLocation) -> None:
        self.location = location
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="datastore-read")

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

    def open_sink(self, path: str, overwrite: bool = False, resume: dict[str, Any] | None = None) -> Sink:
        raise InputError(f"{self.where(path)}: images are written to a datastore by a vSphere import, not file by file")

    def put(self, path: str, data: bytes) -> None:
        """Write a whole (small) file, e.g. a VMDK descriptor."""
        with translate_datastore_errors(f"write {self.where(path)}"):
            response = self.session().put(
                self.url(path), data=data, headers={"Content-Type": "application/octet-stream"}, timeout=TIMEOUT
            )
        check_status(response, f"write {self.where(path)}")

    def get_range(self, path: str, offset: int, length: int) -> bytes:
        where = f"read {self.where(path)} at {offset}"
        with translate_datastore_errors(where):
            response = self.session().get(
                self.url(path), headers={"Range": f"bytes={offset}-{offset + length - 1}"}, timeout=TIMEOUT
            )
            check_status(response, where)
            if response.status_code != 206 and not (offset == 0 and len(response.content) <= length):
                raise InputError(f"{where}: the server ignored the byte range (HTTP {response.status_code})")
            return response.content[:length]

    def size(self, path: str) -> int:
        where = f"stat {self.where(path)}"
        with translate_datastore_errors(where):
            response = self.session().head(self.url(path), timeout=TIMEOUT)
        check_status(response, where)
        return int(response.headers.get("Content-Length", 0))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class DatastoreFile(ByteSource):
    def __init__(self, fs: DatastoreFileSystem, path: str) -> None:
        self.fs = fs
        self.path = fs.where(path)
        self.name = path
        self.size = fs.size(path)

    def preadv(self, view: memoryview, offset: int) -> int:
        end = min(offset + len(view), self.size)
        if end <= offset:
            return 0
        parts = [(pos, min(PART, end - pos)) for pos in range(offset, end, PART)]
        if len(parts) == 1:
            chunks = [self.fs.get_range(self.name, offset, end - offset)]
        else:
            chunks = list(self.fs._pool.map(lambda p: self.fs.get_range(self.name, *p), parts))
        got = 0
        for (pos, _), chunk in zip(parts, chunks, strict=True):
            view[pos - offset : pos - offset + len(chunk)] = chunk
            got += len(chunk)
        return got
