"""Convert between formats, and hash a virtual disk, in one streaming pass.

The pass walks the source's allocated extents in 4 MiB pieces through one
reused buffer; each piece is hashed into the disk's content hash (see
``DiskHasher``: the same whatever the container, cost proportional to the
data) and written only where it holds non-zero data, at 64 KiB granularity.
Memory is bounded by the buffer and the writer's allocation table, never by
the disk size.

The same pass consumes a one-pass streamOptimized VMDK (``convert_stream``),
so an NFC download converts without spooling.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from imageport.disks.content_hash import DiskHasher, HashWorker
from imageport.disks.detect import open_disk
from imageport.disks.extents import SECTOR, MiB
from imageport.disks.fingerprint import fingerprint, parse_fingerprint
from imageport.disks.formats import DiskWriter
from imageport.disks.io import FileSystem, Sink
from imageport.disks.local_files import LOCAL
from imageport.disks.pieces import Piece, nonzero_runs, read_pieces, stream_pieces
from imageport.disks.raw import RawWriter
from imageport.disks.staged import RESUMABLE_FORMATS, StagedSink
from imageport.disks.vhd import VhdDynamicWriter, VhdFixedWriter
from imageport.disks.vhdx import VhdxWriter
from imageport.disks.vmdk import MonolithicSparseVmdkWriter, StreamGrains, StreamOptimizedVmdkWriter
from imageport.errors import InputError, TransferError
from imageport.models import DiskFormat

CHECKPOINT_SECONDS = 5.0  # how often a resumable sink records what is durable

log = logging.getLogger("imageport.disks")

Progress = Callable[[int, int], None]
"""progress(bytes_done, bytes_total) over the source's allocated bytes."""

WRITERS: dict[DiskFormat, Callable[..., DiskWriter]] = {
    DiskFormat.RAW: RawWriter,
    DiskFormat.VHD: VhdFixedWriter,
    DiskFormat.VHD_DYNAMIC: VhdDynamicWriter,
    DiskFormat.VHDX: VhdxWriter,
    DiskFormat.VMDK_STREAM: StreamOptimizedVmdkWriter,
    DiskFormat.VMDK_SPARSE: MonolithicSparseVmdkWriter,
}


def output_size(fmt: DiskFormat, source_size: int, requested: int | None = None) -> int:
    """The output's virtual size: the source's (or a larger requested one), rounded up as the format needs.

    Fixed VHD is rounded to a whole MiB, which is what Azure requires.
    """
    size = source_size
    if requested is not None:
        if requested < source_size:
            raise InputError(
                f"--size {requested} is smaller than the source ({source_size} bytes): only growing is safe"
            )
        size = requested
    unit = MiB if fmt is DiskFormat.VHD else SECTOR
    return -(-size // unit) * unit


def make_writer(fmt: DiskFormat, sink: Sink, size: int, **options: Any) -> DiskWriter:
    return WRITERS[fmt](sink, size, **options)


@dataclass
class ConvertResult:
    source: str
    source_format: DiskFormat
    output: str | None
    format: DiskFormat | None
    virtual_size: int
    source_allocated: int
    data_written: int
    content_hash: str | None
    sha256: str | None
    md5: str | None
    seconds: float
    resumed: bool = False  # an interrupted earlier run's bytes were reused (and the result re-verified)
    attempts: int = 1  # passes it took (``transfer.copy.copy_image`` retries after dropped connections)
    # why an interrupted earlier run's partial output was discarded (the source changed...), if it was
    restarted: str | None = None
    # what the content hash rests on: "written" (this run wrote every byte it hashes), "re-read"
    # (resumed: the finished target was read back), "full" (``verify="full"``: the target was read back)
    verified: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, DiskFormat) else v) for k, v in self.__dict__.items()}


def pump(
    pieces: Iterable[Piece],
    writer: DiskWriter | None,
    hasher: DiskHasher | None,
    total: int,
    progress: Progress | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> tuple[int, int]:
    """Hash (on a worker thread) and write (here) pieces in order; returns (bytes seen, data bytes written)."""
    seen = 0
    written = 0
    last_report = 0.0
    last_checkpoint = time.monotonic()
    worker = HashWorker(hasher) if hasher is not None else None
    if worker is not None:
        worker.start()
    try:
        for offset, data, release in pieces:
            view = memoryview(data)
            runs = list(nonzero_runs(offset, view))
            if worker is not None:
                worker.put(offset, view, not runs, release)
            elif release is not None:
                release()
            if writer is not None:
                for run_off, run in runs:
                    end = run_off + len(run)
                    if end % writer.alignment and end != writer.virtual_size:
                        # a source whose size is not sector-aligned: pad its last run with zeros
                        run = memoryview(bytes(run) + bytes(writer.alignment - end % writer.alignment))
                    writer.write(run_off, run)
                    written += len(run)
            seen += len(view)
            now = time.monotonic()
            if writer is not None and now - last_checkpoint > checkpoint_seconds:
                writer.sink.checkpoint()  # a no-op unless the sink is resumable
                last_checkpoint = now
            if progress is not None and now - last_report > 0.2:
                progress(seen, total)
                last_report = now
    except BaseException:
        if worker is not None:
            worker.stop()  # the error that stopped us is the one to report
        raise
    if worker is not None:
        worker.finish()
    if progress is not None:
        progress(seen, total)
    return seen, written


def convert(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    fmt: DiskFormat,
    *,
    size: int | None = None,
    overwrite: bool = False,
    hashing: bool = True,
    sha256: bool = False,
    md5: bool = False,
    progress: Progress | None = None,
    source_format: DiskFormat | None = None,
    source_fs: FileSystem = LOCAL,
    output_fs: FileSystem = LOCAL,
    resumable: bool = False,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    wait_lock: bool = False,
    verify: str = "auto",
    **writer_options: Any,
) -> ConvertResult:
    """Convert ``source`` to ``output`` in ``fmt``; the output appears only when complete.

    ``source_fs``/``output_fs`` say where each lives (local by default, or e.g. an SMB share).
    ``hashing=False`` skips every digest (a plain format change with nothing to prove).
    ``resumable=True`` writes under a fixed partial name with checkpoints, so a re-run after a
    crash or a dropped connection sends only what had not been made durable (``StagedSink``);
    a resumed output is re-read and its content hash checked before it takes its final name.
    Another run writing ``output`` makes this fail at once (``OutputBusy``), or wait with ``wait_lock``.
    ``verify="full"`` re-reads every output that way (one read of its allocated data).
    """
    if resumable and fmt not in RESUMABLE_FORMATS:
        raise InputError(f"{fmt.value} output cannot be resumed; use one of " + ", ".join(sorted(RESUMABLE_FORMATS)))
    src, dst = os.fspath(source), os.fspath(output)
    if source_fs is output_fs and source_fs.isfile(dst) and source_fs.realpath(src) == source_fs.realpath(dst):
        raise InputError(f"{dst}: the output would overwrite the source")
    started = time.monotonic()
    with open_disk(src, source_format, source_fs) as reader:
        out_size = output_size(fmt, reader.virtual_size, size)
        resume = None
        if resumable:
            resume = {
                "source": fingerprint(reader).model_dump(mode="json"),
                "format": fmt.value,
                "size": out_size,
                "writer": writer_options,
            }
        return _write_pieces(
            read_pieces(reader),
            reader.allocated_bytes(),
            src,
            reader.format,
            dst,
            output_fs,
            fmt,
            out_size,
            overwrite,
            hashing or resumable,
            sha256,
            md5,
            progress,
            started,
            writer_options,
            resume,
            checkpoint_seconds,
            wait_lock,
            verify,
        )


def convert_stream(
    stream: BinaryIO,
    output: str | os.PathLike[str],
    fmt: DiskFormat,
    *,
    name: str = "<stream>",
    overwrite: bool = False,
    sha256: bool = False,
    md5: bool = False,
    progress: Progress | None = None,
    expected_size: int | None = None,
    output_fs: FileSystem = LOCAL,
    wait_lock: bool = False,
    verify: str = "auto",
    **writer_options: Any,
) -> ConvertResult:
    """Convert a streamOptimized VMDK read front to back (e.g. an NFC download) without seeking."""
    grains = StreamGrains(stream, name)
    return convert_pieces(
        stream_pieces(grains), grains.capacity, output, fmt, name=name, source_format=DiskFormat.VMDK_STREAM,
        overwrite=overwrite, sha256=sha256, md5=md5, progress=progress, expected_size=expected_size,
        output_fs=output_fs, wait_lock=wait_lock, verify=verify, **writer_options,
    )  # fmt: skip


def convert_pieces(
    pieces: Iterable[Piece],
    capacity: int,
    output: str | os.PathLike[str],
    fmt: DiskFormat,
    *,
    name: str,
    source_format: DiskFormat,
    overwrite: bool = False,
    sha256: bool = False,
    md5: bool = False,
    progress: Progress | None = None,
    expected_size: int | None = None,
    output_fs: FileSystem = LOCAL,
    wait_lock: bool = False,
    verify: str = "auto",
    **writer_options: Any,
) -> ConvertResult:
    """Convert a disk arriving as pieces in ascending order (a decoded stream, a raw download), hashed."""
    started = time.monotonic()
    out_size = output_size(fmt, capacity, expected_size)
    return _write_pieces(
        pieces,
        expected_size or capacity,
        name,
        source_format,
        os.fspath(output),
        output_fs,
        fmt,
        out_size,
        overwrite,
        True,
        sha256,
        md5,
        progress,
        started,
        writer_options,
        None,
        CHECKPOINT_SECONDS,
        wait_lock,
        verify,
    )


def _write_pieces(
    pieces: Iterable[Piece],
    progress_total: int,
    source: str,
    source_format: DiskFormat,
    output: str,
    output_fs: FileSystem,
    fmt: DiskFormat,
    out_size: int,
    overwrite: bool,
    hashing: bool,
    sha256: bool,
    md5: bool,
    progress: Progress | None,
    started: float,
    writer_options: dict[str, Any],
    resume: dict[str, Any] | None,
    checkpoint_seconds: float,
    wait_lock: bool,
    verify: str = "auto",
) -> ConvertResult:
    """The shared tail of every conversion: write pieces into a new container, hash them, report."""
    if verify not in ("auto", "full"):
        raise InputError(f"verify {verify!r}: use auto or full")
    sink = output_fs.open_sink(output, overwrite=overwrite, resume=resume, wait_lock=wait_lock)
    try:
        restarted = _restart_reason(sink, resume)
        if restarted:
            log.warning("%s: not resuming the interrupted earlier run, starting afresh: %s", output, restarted)
        full = verify == "full"
        if full and isinstance(sink, StagedSink):
            sink.verify_always = True
        writer = make_writer(fmt, sink, out_size, **writer_options)
    except BaseException:
        sink.abort()  # e.g. a size no container holds: the temporary file goes, the lock is released
        raise
    hasher = DiskHasher(out_size, sha256, md5) if hashing or full else None
    digests: tuple[str | None, str | None, str | None] = (None, None, None)
    with writer:
        seen, written = pump(pieces, writer, hasher, progress_total, progress, checkpoint_seconds)
        if hasher is not None:
            digests = hasher.result()
        if isinstance(sink, StagedSink) and digests[0] is not None:
            sink.verifier = functools.partial(_verify_output, output_fs, fmt, digests[0])
    if full and not isinstance(sink, StagedSink) and digests[0] is not None:
        _verify_output(output_fs, fmt, digests[0], output)  # a streamed upload: read back once it is there
    verified = None
    if digests[0] is not None:
        verified = "full" if full else ("re-read" if sink.resumed else "written")
    return ConvertResult(
        source,
        source_format,
        output,
        fmt,
        out_size,
        seen,
        written,
        *digests,
        time.monotonic() - started,
        sink.resumed,
        restarted=restarted,
        verified=verified,
    )


def _restart_reason(sink: Sink, resume: dict[str, Any] | None) -> str | None:
    """Why a resumable sink found an earlier run's partial output and did not resume it (None: nothing found)."""
    stale = getattr(sink, "stale_identity", None)
    if resume is None or stale is None:
        return None
    if not isinstance(stale, dict):
        return "its checkpoint was unreadable"
    if stale.get("source") != resume["source"]:
        now = parse_fingerprint(resume["source"])
        why = now.differences(parse_fingerprint(stale.get("source"))) if now is not None else ""
        return f"the source changed since it was interrupted ({why or 'fingerprint differs'})"
    changed = sorted(k for k in {*stale, *resume} if stale.get(k) != resume.get(k))
    return f"the output options changed ({', '.join(changed)})" if changed else "its partial file was missing"


def _verify_output(fs: FileSystem, fmt: DiskFormat, expected: str, path: str) -> None:
    """Re-read a finished file and compare its content hash: for outputs partly written by another run."""
    got = hash_disk(path, source_format=fmt, fs=fs).content_hash
    if got != expected:
        raise TransferError(
            f"{path}: resumed output does not match the source (content {got}, expected {expected}); "
            "the partial file was discarded, run again to write it afresh"
        )


def hash_disk(
    source: str | os.PathLike[str],
    sha256: bool = False,
    md5: bool = False,
    progress: Progress | None = None,
    source_format: DiskFormat | None = None,
    fs: FileSystem = LOCAL,
) -> ConvertResult:
    """The virtual-disk digests of an image, reading only its allocated extents."""
    started = time.monotonic()
    with open_disk(source, source_format, fs) as reader:
        total = reader.allocated_bytes()
        hasher = DiskHasher(reader.virtual_size, sha256, md5)
        pump(read_pieces(reader), None, hasher, total, progress)
        digests = hasher.result()
        return ConvertResult(
            os.fspath(source),
            reader.format,
            None,
            None,
            reader.virtual_size,
            total,
            0,
            *digests,
            time.monotonic() - started,
        )
