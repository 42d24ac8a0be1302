"""Export a XenServer VM's disk to a share without touching the VM.

1. ``VM.snapshot`` named for the run and marked (``snapshots.take_snapshot``), or the existing snapshot
   the caller names (kept). The snapshot's VDI for the chosen disk is what is read, never the live one.
2. A task (``task.create``) and ``GET /export_raw_vdi?vdi=&format=raw&session_id=&task_id=`` on the host:
   the VDI's bytes front to back, converted on the fly by the disk engine (``convert_pieces``: holes stay
   holes, content hash on the way) into the output's temporary name, renamed only when complete -- one
   pass, no intermediate file. The task is followed to its end (a ``failure`` fails the export with its
   ``error_info``), and destroyed.
3. A stream that ends early (a dropped connection: fewer bytes than ``virtual_size``) is transient: the
   partial output is discarded and the pass starts again with a new task (``EXPORT_RETRY``); the
   handler cannot resume at an offset.
4. The snapshot this run took -- and only it -- is destroyed with its VDIs, also when the export fails.

Decision: ``format=raw`` rather than ``vhd``: a raw stream is positional, so it needs no decoder and
no trust in the host's block order, and zero runs are dropped by the pass anyway. It moves the whole
virtual size over the wire, where VHD would skip unallocated blocks.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from imageport.disks.convert import ConvertResult, Progress, convert_pieces
from imageport.disks.io import FileSystem
from imageport.disks.pieces import PIECE, Piece
from imageport.errors import PlatformError, PlatformNotFound, PlatformUnreachable
from imageport.models import DiskFormat
from imageport.platforms.xenserver.errors import translate_xenapi_errors
from imageport.platforms.xenserver.inventory import XenDisk, describe, find_snapshot, find_vm, select_disk
from imageport.platforms.xenserver.session import XenServerSession
from imageport.platforms.xenserver.snapshots import CLEANUP_RETRY, destroy_snapshot, take_snapshot
from imageport.retry import RetryPolicy

# A pass after a dropped stream: 1, 4, 15 s apart, for at most two minutes from the first failure.
EXPORT_RETRY = RetryPolicy(attempts=4, first_delay=1.0, backoff=4.0, max_delay=15.0, deadline=120.0)
TASK_POLL_S = 2.0  # how often the task is read while the stream runs
TASK_END_S = 120.0  # how long the task may take to leave "pending" once the stream has ended

log = logging.getLogger("imageport.xenserver")


@dataclass
class XenServerExport:
    vm: str
    vm_uuid: str
    disk: str
    vdi_uuid: str
    snapshot: str
    snapshot_created: bool
    output: str
    content_hash: str | None
    sha256: str | None
    md5: str | None
    virtual_size: int
    data_written: int
    seconds: float
    verified: str | None = None
    attempts: int = 1  # export passes: more than one after a dropped stream

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_vm_disk(
    session: XenServerSession,
    vm_ident: str,
    output: str,
    output_fs: FileSystem,
    fmt: DiskFormat = DiskFormat.VHDX,
    *,
    marks: dict[str, str],
    disk: str | None = None,
    snapshot: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    digests: bool = False,
    wait_lock: bool = False,
    verify: str = "auto",
    retry: RetryPolicy = EXPORT_RETRY,
) -> XenServerExport:
    """See the module docstring. ``marks`` go on the snapshot this run takes (run id, expiry: for the reaper)."""
    started = time.monotonic()
    api = session.api
    vm = describe(api, find_vm(api, vm_ident))
    target = select_disk(vm, disk)
    created = None
    if snapshot is None:
        name = f"imageport-export-{marks.get('imageport-run', 'run')}"
        snap = created = take_snapshot(api, vm.ref, name, marks)
    else:
        name = snapshot
        snap = find_snapshot(api, vm, snapshot)
    passes = 0
    try:
        at_snapshot = next((d for d in describe(api, snap).disks if d.userdevice == target.userdevice), None)
        if at_snapshot is None:
            raise PlatformNotFound(f"snapshot {name} of VM {vm.name} holds no disk at userdevice {target.userdevice}")

        def one_pass() -> ConvertResult:
            nonlocal passes
            passes += 1
            return _download(session, at_snapshot, output, output_fs, fmt, overwrite=overwrite, progress=progress,
                             digests=digests, wait_lock=wait_lock, verify=verify)  # fmt: skip

        result = retry.run(one_pass)
    finally:
        if created is not None:  # ours alone, also after a failure
            destroy_snapshot(session.api, created)
    return XenServerExport(
        vm.name, vm.uuid, target.label, at_snapshot.vdi_uuid, name, created is not None, output,
        result.content_hash, result.sha256, result.md5, result.virtual_size, result.data_written,
        time.monotonic() - started, result.verified, passes,
    )  # fmt: skip


def _download(session: XenServerSession, disk: XenDisk, output: str, output_fs: FileSystem, fmt: DiskFormat, *,
              overwrite: bool, progress: Progress | None, digests: bool, wait_lock: bool,
              verify: str) -> ConvertResult:  # fmt: skip
    """One pass: a task, the handler's raw stream into the output, the task followed to its end and destroyed."""
    api = session.api
    where = f"export of VDI {disk.vdi_uuid} from {session.display}"
    with translate_xenapi_errors(f"create a task for the {where}"):
        task = api.task.create("imageport export", f"export_raw_vdi of VDI {disk.vdi_uuid}")
    try:
        response = session.http_get("/export_raw_vdi", vdi=disk.vdi, format="raw", task_id=task)
        try:
            result = convert_pieces(
                _stream_pieces(response, disk.virtual_size, where, _TaskWatch(api, task, where)),
                disk.virtual_size, output, fmt, name=f"{session.display} VDI {disk.vdi_uuid}",
                source_format=DiskFormat.RAW, overwrite=overwrite, sha256=digests, md5=digests, progress=progress,
                output_fs=output_fs, wait_lock=wait_lock, verify=verify,
            )  # fmt: skip
        finally:
            response.close()
        _TaskWatch(api, task, where).wait_end()
    finally:
        CLEANUP_RETRY.run(lambda: _destroy_task(api, task, where))
    return result


def _destroy_task(api: Any, task: str, where: str) -> None:
    with contextlib.suppress(PlatformNotFound), translate_xenapi_errors(f"destroy the task of the {where}"):
        api.task.destroy(task)


class _TaskWatch:
    """The export's task, read at most every ``TASK_POLL_S`` while bytes flow: a failure ends the pass."""

    def __init__(self, api: Any, task: str, where: str) -> None:
        self.api, self.task, self.where = api, task, where
        self.last = time.monotonic()

    def record(self) -> dict[str, Any]:
        with translate_xenapi_errors(f"read the task of the {self.where}"):
            return dict(self.api.task.get_record(self.task))

    def poll(self) -> None:
        if time.monotonic() - self.last < TASK_POLL_S:
            return
        self.last = time.monotonic()
        record = self.record()
        log.debug("%s: task %s, %.0f%%", self.where, record["status"], 100 * float(record["progress"]))
        self._refuse_failure(record)

    def wait_end(self) -> None:
        deadline = time.monotonic() + TASK_END_S
        while True:
            record = self.record()
            self._refuse_failure(record)
            if record["status"] == "success":
                return
            if time.monotonic() > deadline:
                raise PlatformError(f"{self.where}: the task is still {record['status']} after the stream ended")
            time.sleep(0.2)

    def _refuse_failure(self, record: dict[str, Any]) -> None:
        if record["status"] in ("failure", "cancelled", "cancelling"):
            info = " ".join(str(x) for x in record.get("error_info") or []) or record["status"]
            raise PlatformError(f"{self.where}: the task ended {record['status']}: {info}")


def _stream_pieces(response: Any, size: int, where: str, watch: _TaskWatch) -> Iterator[Piece]:
    """The raw stream in 4 MiB pieces at their offsets; fewer bytes than ``size`` is a dropped stream."""
    offset = 0
    while offset < size:
        want = min(PIECE - offset % PIECE, size - offset)
        buf = bytearray(want)
        got = 0
        with translate_xenapi_errors(where):  # a reset or TLS error mid-stream: transient
            while got < want:
                n = response.readinto(memoryview(buf)[got:])
                if not n:
                    break
                got += n
        if got < want:
            raise PlatformUnreachable(f"{where}: the stream ended after {offset + got} of {size} bytes")
        yield offset, buf, None
        offset += want
        watch.poll()
