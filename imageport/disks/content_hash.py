"""The content hash (``sha256-4m:<hex>``): imageport's identity of a virtual disk.

SHA-256 over the virtual size (8 bytes, big-endian) and the SHA-256 of each
4 MiB window of the virtual disk; zero windows use a precomputed digest, so the
cost follows the data. ``DiskHasher`` computes it over a disk fed in order,
``content_hash_of_windows`` from per-window digests (a chunked transfer's
proof), ``HashWorker`` runs a hasher on its own thread for the pass.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable

from imageport.disks.extents import MiB, ZERO_4MiB

WINDOW = 4 * MiB
_ZERO_WINDOW_DIGEST = hashlib.sha256(bytes(WINDOW)).digest()
CONTENT_HASH_PREFIX = "sha256-4m:"


def zero_window_digest(length: int = WINDOW) -> bytes:
    return _ZERO_WINDOW_DIGEST if length == WINDOW else hashlib.sha256(bytes(length)).digest()


def content_hash_of_windows(virtual_size: int, digests: dict[int, bytes]) -> str:
    """The content hash from per-window digests; windows without one are zeros.

    Same value as ``DiskHasher`` over the whole disk: it lets a chunked transfer
    prove what it moved without reading the disk a second time.
    """
    tree = hashlib.sha256(virtual_size.to_bytes(8, "big"))
    for index in range(-(-virtual_size // WINDOW)):
        length = min(WINDOW, virtual_size - index * WINDOW)
        tree.update(digests.get(index) or zero_window_digest(length))
    return CONTENT_HASH_PREFIX + tree.hexdigest()


class DiskHasher:
    """Digests of a virtual disk's logical bytes, fed in ascending order.

    ``content_hash`` is imageport's disk identity: SHA-256 over the virtual size
    (8 bytes, big-endian) followed by the SHA-256 of every 4 MiB window of the
    virtual disk in order (the last window may be short). All-zero windows use a
    precomputed digest, so the cost follows the allocated data, not the virtual
    size, and a target can be verified from its allocation map plus per-window
    digests. It is the same for every container of one disk.

    ``plain_sha256`` and ``md5`` (Citrix's -Md5Hash) are the classic whole-stream
    digests, on request: they must hash every zero byte too.
    """

    def __init__(self, virtual_size: int, plain_sha256: bool = False, md5: bool = False) -> None:
        if isinstance(virtual_size, bool) or virtual_size <= 0:
            raise ValueError(f"DiskHasher needs the virtual size in bytes, got {virtual_size!r}")
        self.virtual_size = virtual_size
        self.tree = hashlib.sha256(virtual_size.to_bytes(8, "big"))
        self.window = hashlib.sha256()
        self.window_index = 0
        self.plain = hashlib.sha256() if plain_sha256 else None
        self.md5 = hashlib.md5() if md5 else None
        self.position = 0

    @property
    def full_stream(self) -> bool:
        return self.plain is not None or self.md5 is not None

    def _window_end(self, index: int) -> int:
        return min((index + 1) * WINDOW, self.virtual_size)

    def _close_window(self, skipped: bool = False) -> None:
        if skipped:  # never fed: a window of zeros, digest known in advance
            self.tree.update(zero_window_digest(self._window_end(self.window_index) - self.window_index * WINDOW))
        else:
            self.tree.update(self.window.digest())
        self.window = hashlib.sha256()
        self.window_index += 1

    def _feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        if self.position + len(view) > self.virtual_size:
            raise ValueError(f"fed {self.position + len(view)} bytes to a hasher of a {self.virtual_size}-byte disk")
        while len(view):
            end = self._window_end(self.window_index)
            part = view[: end - self.position]
            for digest in (self.window, self.plain, self.md5):
                if digest is not None:
                    digest.update(part)
            self.position += len(part)
            view = view[len(part) :]
            if self.position == end:
                self._close_window()

    def update(self, data: bytes | memoryview) -> None:
        self._feed(data)

    def zeros_until(self, offset: int) -> None:
        """Account for zeros up to ``offset``: whole zero windows cost nothing unless a full-stream digest is on."""
        offset = min(offset, self.virtual_size)
        zero = memoryview(ZERO_4MiB)
        while self.position < offset:
            window_start = self.window_index * WINDOW
            end = self._window_end(self.window_index)
            if not self.full_stream and self.position == window_start and offset >= end:
                self.position = end
                self._close_window(skipped=True)
                continue
            self._feed(zero[: min(len(zero), offset - self.position, end - self.position)])

    def result(self) -> tuple[str, str | None, str | None]:
        """(content hash, plain SHA-256, MD5) once the whole disk was fed."""
        self.zeros_until(self.virtual_size)
        plain = self.plain.hexdigest() if self.plain else None
        md5 = self.md5.hexdigest() if self.md5 else None
        return CONTENT_HASH_PREFIX + self.tree.hexdigest(), plain, md5


class HashWorker(threading.Thread):
    """Hashes pieces in order on its own thread (hashlib releases the GIL), so hashing
    overlaps reading and writing; releases each pooled buffer when done with it."""

    def __init__(self, hasher: DiskHasher) -> None:
        super().__init__(name="disk-hash", daemon=True)
        self.hasher = hasher
        self.queue: queue.Queue[tuple[int, memoryview | bytes, bool, Callable[[], None] | None] | None] = queue.Queue(
            maxsize=8
        )
        self.error: BaseException | None = None

    def run(self) -> None:
        while (item := self.queue.get()) is not None:
            offset, data, zero, release = item
            try:
                if self.error is None:
                    if zero:
                        self.hasher.zeros_until(offset + len(data))  # free for whole windows
                    else:
                        self.hasher.zeros_until(offset)
                        self.hasher.update(data)
            except BaseException as exc:  # surfaced by finish()
                self.error = exc
            finally:
                if release is not None:
                    release()

    def put(self, offset: int, data: memoryview | bytes, zero: bool, release: Callable[[], None] | None) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((offset, data, zero, release))

    def finish(self) -> None:
        self.stop()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self.queue.put(None)
        self.join()
