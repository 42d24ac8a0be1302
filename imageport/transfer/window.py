"""One read of a source disk, shared by many writers: a bounded window of 4 MiB chunks.

A producer thread reads the source's allocated data once, front to back, in chunks on the 4 MiB
grid (``transfer.plan``: the content hash's window and the page-blob write limit), into a fixed
number of reused buffers (``slots``). Each consumer (a *sink*: the staging copy, a target's
upload) sees the stream as an ordinary ``DiskReader`` (``StreamedReader``) through a file system
of its own (``WindowFileSystem``), so the existing writers -- ``copy_image``, the page-blob upload,
the datastore import -- run unchanged on it.

Why a window, not a queue per sink: every sink reads the same bytes; a buffer is given back only
once *every* sink still attached has read past it, so memory is ``slots`` chunks whatever the
number of sinks, and the slowest sink back-pressures the producer (it waits for a free slot). A
sink's *cursor* is the highest offset it has asked for: a sink may re-read inside its current
chunk (a partition-style probe, then the copy from offset 0), and skip ahead (a resumed upload
skips what its target holds). A sink that ends, well or not, detaches: the others no longer wait
for it. A read of a chunk already given back (a sink's retry starting over) is served from the
source itself and counted (``reads_behind``); holes between planned chunks read as zeros without
waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from imageport.disks.extents import Extent
from imageport.disks.formats import DiskReader
from imageport.disks.io import ByteSource, FileSystem, Sink
from imageport.errors import InputError, TransferError
from imageport.transfer.plan import CHUNK, plan_chunks

WINDOW_SLOTS = 8  # 32 MiB of chunks in flight, however many sinks
STREAM_PATH = "stream"  # the one file a sink's WindowFileSystem holds
_ZEROS = memoryview(bytes(CHUNK))


@dataclass
class WindowStats:
    """The window's own counters: what the tests assert and the benchmark prints."""

    slots: int
    chunks_planned: int
    chunks_read: int = 0  # chunks the producer read from the source (each exactly once)
    bytes_read: int = 0
    reads_behind: int = 0  # sink reads served from the source again: the chunk had been given back
    bytes_behind: int = 0
    peak_in_flight: int = 0  # most chunks held at once (never more than ``slots``)
    waits_for_room: int = 0  # times the producer waited for the slowest sink to free a slot


class StreamWindow:
    """The producer's side: read ``source`` once into ``slots`` buffers; sinks read through ``reader(sink)``."""

    def __init__(self, source: DiskReader, slots: int = WINDOW_SLOTS) -> None:
        if slots < 1:
            raise InputError(f"stream window of {slots} chunks: it needs at least one")
        self.source = source
        self.plan = plan_chunks(source.extents(), source.virtual_size)
        self._order = {chunk.index: i for i, chunk in enumerate(self.plan)}
        self._free = [bytearray(CHUNK) for _ in range(slots)]
        self._held: dict[int, tuple[memoryview, bytearray]] = {}  # chunk index -> its data, its buffer
        self._produced = 0  # plan entries read so far
        self._cursors: dict[int, int] = {}  # attached sink -> highest offset it asked for
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self.stats = WindowStats(slots, len(self.plan))

    # --- the producer ---------------------------------------------------------------------------

    def attach(self, sink: int) -> None:
        with self._cond:
            self._cursors[sink] = 0

    def detach(self, sink: int) -> None:
        """``sink`` ended (well or not): the window no longer waits for it."""
        with self._cond:
            self._cursors.pop(sink, None)
            self._release()

    def fail(self, error: BaseException) -> None:
        """Stop the stream: the producer stops and every waiting or later read raises."""
        with self._cond:
            if self._error is None:
                self._error = error
            self._cond.notify_all()

    def produce(self) -> None:
        """Read every planned chunk once, in order, as slots free up (run on its own thread)."""
        try:
            for position, chunk in enumerate(self.plan):
                with self._cond:
                    while not self._free and self._error is None and self._cursors:
                        self.stats.waits_for_room += 1
                        self._cond.wait()
                    if self._error is not None or not self._cursors:
                        return  # stopped, or no sink is left to read it
                    buf = self._free.pop()
                view = self.source.readinto(chunk.offset, memoryview(buf)[: chunk.length])
                with self._cond:
                    self._held[chunk.index] = (view, buf)
                    self._produced = position + 1
                    self.stats.chunks_read += 1
                    self.stats.bytes_read += chunk.length
                    self.stats.peak_in_flight = max(self.stats.peak_in_flight, len(self._held))
                    self._release()
                    self._cond.notify_all()
        except BaseException as exc:
            self.fail(exc)
            raise

    def _release(self) -> None:
        """Give back every held chunk each attached sink has read past (the lock is held)."""
        floor = min(self._cursors.values(), default=None)
        for index in sorted(self._held):
            view, buf = self._held[index]
            if floor is not None and index * CHUNK + len(view) > floor:
                break
            del self._held[index]
            self._free.append(buf)
            self._cond.notify_all()

    # --- the sinks' side ------------------------------------------------------------------------

    def read(self, sink: int, offset: int, view: memoryview) -> None:
        """Fill ``view`` with the virtual bytes at ``offset`` for ``sink`` (bounds checked by the reader)."""
        with self._cond:
            if sink in self._cursors and offset > self._cursors[sink]:
                self._cursors[sink] = offset
                self._release()
        pos = 0
        while pos < len(view):
            at = offset + pos
            index, inner = divmod(at, CHUNK)
            part = view[pos : pos + min(CHUNK - inner, len(view) - pos)]
            if not self._copy(index, inner, part):
                self.source.readinto(at, part)  # given back already: this sink started over
                with self._cond:
                    self.stats.reads_behind += 1
                    self.stats.bytes_behind += len(part)
            pos += len(part)

    def _copy(self, index: int, inner: int, part: memoryview) -> bool:
        """Copy from chunk ``index`` once the producer has read it; False when it was already given back."""
        position = self._order.get(index)
        if position is None:
            part[:] = _ZEROS[: len(part)]  # no data there: a hole of the source
            return True
        with self._cond:
            while position >= self._produced and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise TransferError(f"{self.source.path}: the source stream stopped: {self._error}")
            held = self._held.get(index)
            if held is None:
                return False
            part[:] = held[0][inner : inner + len(part)]  # under the lock: the buffer cannot be recycled meanwhile
            return True


class StreamedReader(DiskReader):
    """The source disk as one sink sees it: the source's size, allocation map and identity, bytes from the window.

    Its fingerprint is the source's (``disks.fingerprint``), so a target's resume checkpoint binds it
    to the version of the source it was streamed from."""

    def __init__(self, window: StreamWindow, sink: int) -> None:
        source = window.source
        super().__init__(source.path)
        self.window, self.sink, self.source = window, sink, source
        self.format, self.subformat, self.virtual_size = source.format, source.subformat, source.virtual_size

    def extents(self) -> Iterator[Extent]:
        return self.source.extents()

    def _read_into(self, offset: int, view: memoryview) -> None:
        self.window.read(self.sink, offset, view)

    def details(self) -> dict[str, Any]:
        return self.source.details()

    def stamps(self) -> list[dict[str, int | str]]:
        return self.source.stamps()

    def change_markers(self) -> dict[str, str]:
        return self.source.change_markers()

    def metadata(self) -> Iterator[bytes]:
        return self.source.metadata()

    def chain(self) -> list[DiskReader]:
        return [self, *self.source.chain()[1:]]

    def close(self) -> None:
        pass  # the source belongs to the stream, not to one sink


class WindowFileSystem(FileSystem):
    """A sink's view of the stream: one file, ``STREAM_PATH``, that opens as the source disk (``disk_reader``)."""

    def __init__(self, window: StreamWindow, sink: int) -> None:
        self.window, self.sink = window, sink

    def disk_reader(self, path: str, format: Any = None) -> DiskReader | None:
        return StreamedReader(self.window, self.sink) if path == STREAM_PATH else None

    def open(self, path: str) -> ByteSource:
        raise InputError(f"{path}: a streamed disk is read as a disk, not as a file")

    def isfile(self, path: str) -> bool:
        return path == STREAM_PATH

    def open_sink(self, path: str, overwrite: bool = False, resume: dict[str, Any] | None = None,
                  wait_lock: bool = False) -> Sink:  # fmt: skip
        raise InputError(f"{path}: nothing is written into a stream")
