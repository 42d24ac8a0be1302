"""Upload any image the disk engine reads into a page blob as a fixed VHD, converted on the fly.

The blob (a managed disk's upload SAS) must already be exactly N MiB + 512
bytes: the virtual disk rounded up to a MiB, then the footer. No intermediate
file is written.

- Sparse: only 4 MiB chunks touched by the source's allocated extents are
  read; all-zero chunks are not sent.
- Parallel: the main thread reads chunks in order into a small buffer pool;
  ``threads`` workers digest and upload them, each request retried on
  transient errors only, by ``PAGE_RETRY`` (``imageport.retry``: backoff, or
  the server's Retry-After, within a deadline).
- Resumable: a checkpoint file binds this target to this source's
  *fingerprint* (``disks.fingerprint``: file stamps, container change markers,
  metadata digest). On a re-run the target's own page ranges say which chunks
  arrived (a ≤4 MiB Put Page is atomic), so at most the chunks that were in
  flight are sent again. A checkpoint of another version of the source (the
  file was edited in place meanwhile) is not resumed: the blob is cleared and
  the upload starts afresh, saying why (``restarted``).
- Proof from the target: a chunk that arrived earlier is read back from the
  blob and its digest compared with the source's (recorded by the earlier run
  of the same fingerprint, or read now); a mismatch is sent again. The content
  hash is made of the digests of what this run sent plus what it read back.
- Nothing looks complete early: the VHD footer is written last.
- Verified: afterwards the target's page ranges must cover every data chunk
  and hold nothing where the source is zero. ``verify="full"`` also reads every
  page range back and recomputes the content hash from the blob (one read of
  the data, not of the virtual size).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imageport.disks.content_hash import content_hash_of_windows
from imageport.disks.convert import Progress, output_size
from imageport.disks.extents import Extent, is_zero
from imageport.disks.fingerprint import SourceFingerprint, fingerprint, parse_fingerprint
from imageport.disks.formats import DiskReader
from imageport.disks.vhd import ALL_ONES, FIXED, build_footer
from imageport.errors import InputError, TargetNotEmpty, TransferError
from imageport.models import DiskFormat
from imageport.redaction import redact_data
from imageport.retry import RetryPolicy
from imageport.storage.page_blob import PageBlob
from imageport.transfer.plan import CHUNK, Chunk, covered, plan_chunks, touched

log = logging.getLogger("imageport.transfer")

# Per request: 0.5, 1, 2 ... 16 s apart (or as the server's Retry-After says), for at most a minute.
PAGE_RETRY = RetryPolicy(attempts=7, first_delay=0.5, max_delay=16, deadline=60)
# Where upload checkpoints live unless told otherwise (one small JSON file per target).
DEFAULT_CHECKPOINTS = Path(os.environ.get("IMAGEPORT_CHECKPOINTS", "~/.cache/imageport/checkpoints")).expanduser()


@dataclass
class UploadResult:
    target: str
    virtual_size: int
    chunks_planned: int
    chunks_sent: int
    chunks_resumed: int
    zero_chunks: int
    bytes_sent: int
    content_hash: str
    seconds: float
    chunks_read_back: int = 0  # chunks an earlier run sent, read back from the blob and compared
    chunks_repaired: int = 0  # of those, chunks that did not match the source and were sent again
    restarted: str | None = None  # why an interrupted upload's chunks were not resumed, if they were not
    verified: str = "page-ranges"  # "page-ranges" (+ read-back of resumed chunks), or "full" (every range read)


def _retrying(action: Callable[[], None], sleep: Callable[[float], None] = time.sleep) -> None:
    PAGE_RETRY.run(action, sleep=sleep)


class Checkpoint:
    """Which source (by fingerprint) this target is receiving; digests of chunks already read."""

    def __init__(self, directory: Path, target: str, source: SourceFingerprint) -> None:
        self.path = directory / f"{hashlib.sha256(target.encode()).hexdigest()[:32]}.json"
        self.source = source
        # Saved in a file beside the upload: redacted like every other sidecar.
        self.identity = redact_data({"target": target, "source": source.model_dump(mode="json"), "chunk": CHUNK})
        self.digests: dict[int, bytes] = {}
        self.valid = False
        self.stale: str | None = None  # a checkpoint of this target made from another version of the source
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        identity = saved.get("identity") if isinstance(saved, dict) else None
        if identity == self.identity:
            self.valid = True
            self.digests = {int(k): bytes.fromhex(v) for k, v in saved.get("digests", {}).items()}
        elif isinstance(identity, dict) and identity.get("target") == self.identity["target"]:
            why = source.differences(parse_fingerprint(identity.get("source")))
            self.stale = f"the source changed since the interrupted upload ({why or 'fingerprint differs'})"

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex[:6]}")
        temp.write_text(
            json.dumps({"identity": self.identity, "digests": {str(k): v.hex() for k, v in self.digests.items()}})
        )
        os.replace(temp, self.path)
        self.valid = True

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def upload_to_page_blob(
    reader: DiskReader,
    blob: PageBlob,
    *,
    threads: int = 5,
    checkpoint_dir: Path,
    overwrite: bool = False,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    verify: str = "auto",
) -> UploadResult:
    started = time.monotonic()
    if verify not in ("auto", "full"):
        raise InputError(f"verify {verify!r}: use auto or full")
    size = output_size(DiskFormat.VHD, reader.virtual_size)
    if blob.size != size + 512:
        raise InputError(
            f"{blob.display} is {blob.size} bytes; this image needs exactly {size + 512} "
            f"({size // 2**20} MiB + 512): create the disk with that upload size"
        )
    checkpoint = Checkpoint(checkpoint_dir, blob.display, fingerprint(reader))
    present_ranges = list(blob.present())
    restarted = None
    if present_ranges and not checkpoint.valid:
        if checkpoint.stale is not None:
            restarted = checkpoint.stale  # never trust what it sent: those chunks came from other bytes
            log.warning("%s: starting the upload afresh: %s", blob.display, restarted)
        elif not overwrite:
            raise TargetNotEmpty(
                f"{blob.display} already holds data not written by this upload of {reader.path}; "
                "use --force to replace it"
            )
        _clear(blob, present_ranges, sleep)
        present_ranges = []
    checkpoint.save()  # from here on, the target belongs to this source

    chunks = plan_chunks(reader.extents(), size)  # one walk of the allocation map
    arrived = covered(present_ranges, size) & {c.index for c in chunks}
    total = sum(c.length for c in chunks)
    recorded = dict(checkpoint.digests)  # the source's digests, as the earlier run of this fingerprint read them
    digests: dict[int, bytes] = {}
    stats = {"sent": 0, "bytes": 0, "zero": 0, "resumed": 0, "done": 0, "read_back": 0, "repaired": 0}
    pool: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    for _ in range(threads + 2):
        pool.put(bytearray(CHUNK))
    last_save = time.monotonic()
    # what the target holds where an earlier run sent chunks: read back (in parallel) before anything is sent
    held = _read_back_digests(blob, [c for c in chunks if c.index in arrived], threads, sleep)

    def send(chunk: Chunk, view: memoryview) -> None:
        # The digest is taken here, on the upload worker (hashlib lets go of the GIL for a 4 MiB
        # buffer): on the main thread it was 45% of the reader's time, the bound of the whole upload.
        digests[chunk.index] = hashlib.sha256(view).digest()
        _retrying(lambda: blob.write(chunk.offset, view), sleep)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="page-upload") as executor:
        in_flight: dict[Future[None], tuple[Chunk, bytearray]] = {}

        def settle(block: bool) -> None:
            nonlocal last_save
            if not in_flight:
                return
            done, _ = wait(in_flight, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for future in done:
                chunk, buf = in_flight.pop(future)
                pool.put(buf)
                future.result()  # raises the chunk's final error
                stats["sent"] += 1
                stats["bytes"] += chunk.length
            if time.monotonic() - last_save > 2:
                checkpoint.digests = {**recorded, **digests}
                checkpoint.save()
                last_save = time.monotonic()

        try:
            for chunk in chunks:
                while pool.empty():
                    settle(block=True)
                buf = pool.get()
                data = memoryview(buf)[: chunk.length]
                have_source = False
                if chunk.index in arrived:
                    # sent by an interrupted run: trust what the target holds, not what that run remembered
                    stats["read_back"] += 1
                    expected = recorded.get(chunk.index)
                    if expected is None:  # in flight when it stopped: digest the source now
                        _read_chunk(reader, chunk, data)
                        have_source = True
                        expected = hashlib.sha256(data).digest()
                    if held[chunk.index] == expected:
                        stats["resumed"] += 1
                        digests[chunk.index] = expected
                        pool.put(buf)
                        stats["done"] += chunk.length
                        if progress is not None:
                            progress(stats["done"], total)
                        continue
                    stats["repaired"] += 1
                    log.warning("%s: chunk at %d differs from the source; sending it again", blob.display, chunk.offset)
                if not have_source:
                    _read_chunk(reader, chunk, data)
                if is_zero(buf if chunk.length == len(buf) else data):  # a whole buffer compares without a copy
                    stats["zero"] += 1
                    if chunk.index in arrived:  # a repaired chunk that is zero in the source: make it a hole
                        _retrying(lambda c=chunk: blob.clear(c.offset, c.length), sleep)
                    pool.put(buf)
                else:
                    in_flight[executor.submit(send, chunk, data)] = (chunk, buf)
                settle(block=False)
                stats["done"] += chunk.length
                if progress is not None:
                    progress(stats["done"], total)
            while in_flight:
                settle(block=True)
        finally:
            # Digests of chunks still in flight are kept too: a re-run compares them with what the
            # target holds, for the chunks its page ranges show as arrived.
            checkpoint.digests = {**recorded, **digests}
            checkpoint.save()

    _retrying(lambda: blob.write(size, build_footer(size, FIXED, ALL_ONES, uuid.uuid4().bytes)), sleep)
    _verify(blob, size, set(digests))
    content_hash = content_hash_of_windows(size, digests)
    if verify == "full":
        on_target = hash_page_blob(blob, size, threads, sleep)
        if on_target != content_hash:
            raise TransferError(
                f"{blob.display}: read back, the blob holds {on_target}, not the source's {content_hash}; run again"
            )
    checkpoint.remove()
    return UploadResult(
        blob.display,
        size,
        len(chunks),
        stats["sent"],
        stats["resumed"],
        stats["zero"],
        stats["bytes"] + 512,
        content_hash,
        time.monotonic() - started,
        stats["read_back"],
        stats["repaired"],
        restarted,
        "full" if verify == "full" else "page-ranges",
    )


def _read_chunk(reader: DiskReader, chunk: Chunk, data: memoryview) -> None:
    """The source's bytes of ``chunk`` into ``data`` (zeros past the virtual size: the disk rounded up to a MiB)."""
    view = reader.readinto(chunk.offset, data[: max(0, min(chunk.length, reader.virtual_size - chunk.offset))])
    if len(view) < chunk.length:
        data[len(view) :] = bytes(chunk.length - len(view))


def _read_back(blob: PageBlob, chunk: Chunk, sleep: Callable[[float], None]) -> bytes:
    got: list[bytes] = []
    _retrying(lambda: got.append(blob.read(chunk.offset, chunk.length)), sleep)
    return got[-1]


def _read_back_digests(
    blob: PageBlob, chunks: list[Chunk], threads: int, sleep: Callable[[float], None]
) -> dict[int, bytes]:
    """SHA-256 of what the blob holds in each of ``chunks``, read ``threads`` at a time."""
    if not chunks:
        return {}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="page-read-back") as pool:
        found = pool.map(lambda c: hashlib.sha256(_read_back(blob, c, sleep)).digest(), chunks)
        return {c.index: digest for c, digest in zip(chunks, found, strict=True)}


def hash_page_blob(blob: PageBlob, size: int, threads: int = 5, sleep: Callable[[float], None] = time.sleep) -> str:
    """The content hash of the first ``size`` bytes of a page blob, reading only its page ranges."""
    present = [Extent(e.offset, min(e.end, size) - e.offset) for e in blob.present() if e.offset < size]
    chunks = [Chunk(i, i * CHUNK, min(CHUNK, size - i * CHUNK)) for i in sorted(touched(present))]
    return content_hash_of_windows(size, _read_back_digests(blob, chunks, threads, sleep))


def _clear(blob: PageBlob, ranges: list[Any], sleep: Callable[[float], None]) -> None:
    for ext in ranges:
        _retrying(lambda ext=ext: blob.clear(ext.offset, ext.length), sleep)


def _verify(blob: PageBlob, size: int, data_chunks: set[int]) -> None:
    present = list(blob.present())
    missing = data_chunks - covered(present, size)
    if missing:
        raise TransferError(
            f"{blob.display}: after upload, {len(missing)} data chunk(s) are missing, "
            f"first at offset {min(missing) * CHUNK}"
        )
    # the footer's page may coalesce with the last data range: look only below the virtual size
    stale = touched(Extent(e.offset, min(e.end, size) - e.offset) for e in present if e.offset < size) - data_chunks
    if stale:
        raise TransferError(f"{blob.display}: holds data where the image is zero, first at {min(stale) * CHUNK}")
