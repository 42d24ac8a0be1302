"""An Azure page blob addressed by a SAS URL: what a managed disk's write grant hands out.

Rules (Put Page, Get Page Ranges): writes are at most 4 MiB, start and end on
512-byte boundaries, and never past the blob's size; the blob already exists
with its final size (``md-impexp`` accounts refuse Put Blob), so we never
create it here. Page ranges are listed in segments so a fragmented blob
cannot time the listing out.

The SAS query string is a secret: ``display`` shows the URL without it, and
every error message passes through the error tree's redaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from imageport.disks.extents import Extent, MiB, coalesce
from imageport.disks.io import ByteSource, FileSystem, Sink
from imageport.errors import InputError
from imageport.redaction import register_sas
from imageport.storage.azure_errors import translate_azure_errors

MAX_PAGE_WRITE = 4 * MiB
PAGE = 512
RANGE_SEGMENT = 16 * 1024 * MiB  # list page ranges 16 GiB at a time


class PageBlob:
    def __init__(self, sas_url: str) -> None:
        from azure.storage.blob import BlobClient

        register_sas(sas_url)  # from now on the signature is redacted wherever it would appear
        try:
            parts = urlsplit(sas_url)
        except ValueError:
            raise InputError("a page blob needs an http(s) URL with its SAS query string") from None
        if parts.scheme not in ("https", "http") or not parts.query:
            raise InputError("a page blob needs an http(s) URL with its SAS query string")
        self.display = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        try:
            # Retries are the copier's job (it knows what is transient and honours Retry-After).
            self.client = BlobClient.from_blob_url(sas_url, retry_total=0)
        except ValueError:  # its message repeats the whole URL, signature included
            raise InputError(
                f"{self.display}: not a blob URL (use http(s)://ACCOUNT-HOST/CONTAINER/BLOB?SAS, "
                "or http://HOST:PORT/ACCOUNT/CONTAINER/BLOB?SAS for an emulator)"
            ) from None
        with translate_azure_errors(f"read properties of {self.display}"):
            props = self.client.get_blob_properties()
        if props.blob_type != "PageBlob":
            raise InputError(f"{self.display} is a {props.blob_type}, not a page blob")
        self.size: int = props.size
        self.version = {"size": props.size, "etag": str(props.etag), "last_modified": str(props.last_modified)}

    def present(self) -> Iterator[Extent]:
        """Ranges holding written pages, in segments."""
        for start in range(0, self.size, RANGE_SEGMENT):
            length = min(RANGE_SEGMENT, self.size - start)
            with translate_azure_errors(f"list page ranges of {self.display}"):
                ranges = list(self.client.list_page_ranges(offset=start, length=length))
            yield from coalesce(Extent(r.start, r.end + 1 - r.start) for r in ranges if not r.cleared)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        n = len(data)
        if n == 0 or n > MAX_PAGE_WRITE or offset % PAGE or n % PAGE or offset + n > self.size:
            raise InputError(
                f"{self.display}: page write {offset}+{n} breaks the rules (≤ 4 MiB, 512-aligned, inside the blob)"
            )
        with translate_azure_errors(f"write pages {offset}+{n} of {self.display}"):
            self.client.upload_page(bytes(data), offset=offset, length=n)

    def clear(self, offset: int, length: int) -> None:
        """Turn pages back into holes (Put Page with clear may span the whole blob)."""
        with translate_azure_errors(f"clear pages {offset}+{length} of {self.display}"):
            self.client.clear_page(offset=offset, length=length)

    def read(self, offset: int, length: int) -> bytes:
        with translate_azure_errors(f"read {offset}+{length} of {self.display}"):
            return self.client.download_blob(offset=offset, length=length).readall()


class PageBlobFile(ByteSource):
    """A page blob read as a file: ranged GETs, and its page ranges as the allocation map
    (a managed disk read through a Read grant is a fixed VHD: its data, then the footer)."""

    def __init__(self, blob: PageBlob) -> None:
        self.blob = blob
        self.path = blob.display
        self.size = blob.size

    def stamp(self) -> dict[str, int | str]:
        return dict(self.blob.version)

    def preadv(self, view: memoryview, offset: int) -> int:
        end = min(offset + len(view), self.size)
        if end <= offset:
            return 0
        data = self.blob.read(offset, end - offset)
        view[: len(data)] = data
        return len(data)

    def data_extents(self, start: int, end: int) -> Iterator[Extent]:
        for ext in self.blob.present():
            lo, hi = max(ext.offset, start), min(ext.end, end)
            if lo < hi:
                yield Extent(lo, hi - lo)


class PageBlobFileSystem(FileSystem):
    """One page blob, named by any path (there are no siblings): for reading a granted disk."""

    def __init__(self, sas_url: str) -> None:
        self.blob = PageBlob(sas_url)

    def open(self, path: str) -> ByteSource:
        return PageBlobFile(self.blob)

    def isfile(self, path: str) -> bool:
        return True

    def open_sink(
        self, path: str, overwrite: bool = False, resume: dict[str, Any] | None = None, wait_lock: bool = False
    ) -> Sink:
        raise InputError(f"{self.blob.display}: a granted disk is read here, never written")
