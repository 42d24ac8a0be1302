"""An AHV image's bytes as a file the disk engine reads: ranged GETs of ``content/images/{extId}/file``.

Prism serves an image's file with ``Range`` (206). The parts, their parallel window and the
read-ahead are the datastore reader's (``storage.datastore.DatastoreFile``: ``PART``-sized ranged
GETs on a pool of ``WORKERS``, ``AHEAD`` parts ahead while reads are sequential), which this
file system serves through the three calls it makes (``where``, ``head``, ``read_into``).

The requests go through the SDK's own REST client (its urllib3 pool, TLS trust, pinned fingerprint
and basic auth), streamed rather than through the generated ``get_file_by_image_id``, which writes
every answer to a temporary file. A stream that drops mid-part is resumed: the rest of the part is
asked for again (``bytes=START+GOT-END``), under ``RESUME`` (the one retry policy).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3

from imageport.disks.io import ByteSource, FileSystem, Sink
from imageport.errors import InputError, PlatformError, PlatformUnreachable
from imageport.platforms.ahv.errors import translate_ahv_errors
from imageport.platforms.ahv.session import AhvSession
from imageport.retry import RetryPolicy
from imageport.storage.datastore import WORKERS, DatastoreFile

STREAM_PIECE = 256 * 1024
TIMEOUT_MS = [10_000, 120_000]  # connect, read: the SDK's unit
# A dropped stream: each resume asks for what is still missing, so progress never repeats.
RESUME = RetryPolicy(attempts=6, first_delay=0.2, backoff=2.0, max_delay=5.0, deadline=60.0)


class AhvImageFileSystem(FileSystem):
    """Read-only: paths are image extIds; ``size`` is the image's ``sizeBytes``, known before the first read."""

    def __init__(self, session: AhvSession, sizes: dict[str, int]) -> None:
        self.session = session
        self.sizes = dict(sizes)
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="ahv-image-read")
        self.resumed = 0  # how many dropped streams were resumed (the export reports it)

    def url(self, ext_id: str) -> str:
        version = self.session.vmm.SDK_VERSION  # the path the SDK's ImagesApi.get_file_by_image_id uses
        return f"{self.session.base_url()}/api/vmm/{version}/content/images/{ext_id}/file"

    def where(self, path: str) -> str:
        return f"{self.session.display} image {path}"

    def head(self, path: str) -> dict[str, int | str]:
        if path not in self.sizes:
            raise InputError(f"{self.where(path)}: not an image this export made")
        return {"size": self.sizes[path], "image": path}

    def open(self, path: str) -> ByteSource:
        return DatastoreFile(self, path)  # type: ignore[arg-type]  # the three calls above are what it uses

    def isfile(self, path: str) -> bool:
        return path in self.sizes

    def open_sink(self, path: str, overwrite: bool = False, resume: dict[str, Any] | None = None,
                  wait_lock: bool = False) -> Sink:  # fmt: skip
        raise InputError(f"{self.where(path)}: an AHV image is read here, not written")

    def read_into(self, path: str, offset: int, view: memoryview) -> int:
        data = self.get_range(path, offset, len(view))
        view[: len(data)] = data
        return len(data)

    def get_range(self, path: str, offset: int, length: int) -> bytes:
        got = bytearray()
        RESUME.run(lambda: self._fetch(path, offset, length, got),
                   retry_on=lambda exc: isinstance(exc, PlatformUnreachable),
                   on_failure=lambda attempt, exc: self._count_resume())  # fmt: skip
        return bytes(got)

    def _count_resume(self) -> None:
        self.resumed += 1

    def _fetch(self, path: str, offset: int, length: int, got: bytearray) -> None:
        """Append to ``got`` the bytes of ``[offset + len(got), offset + length)``."""
        start, end = offset + len(got), offset + length - 1
        where = f"read {self.where(path)} at {start}"
        client = self.session.vmm
        token = client.configuration.get_basic_auth_token()
        headers = {"Range": f"bytes={start}-{end}", "Accept": "application/octet-stream", "Authorization": token}
        with translate_ahv_errors(where):
            response = client.rest_client.GET(self.url(path), headers=headers, _preload_content=False,
                                              _request_timeout=TIMEOUT_MS)  # fmt: skip
            raw = response.urllib3_response
            try:
                if response.status == 401:
                    raise PlatformError(f"{where}: Prism Central refused the user name or password")
                if response.status != 206:
                    raise PlatformError(f"{where}: the server ignored the byte range (HTTP {response.status})")
                for piece in raw.stream(STREAM_PIECE):
                    got += piece[: length - len(got)]  # never past the part, whatever the server sends
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError) as exc:
                raise PlatformUnreachable(f"{where}: the stream dropped after {len(got)} bytes ({exc})") from None
            finally:
                raw.release_conn()
        if len(got) < length:
            raise PlatformUnreachable(f"{where}: the stream ended {length - len(got)} bytes short")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
