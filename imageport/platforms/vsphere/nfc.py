"""Reading a VM's disk through an NFC export lease, as one streamOptimized VMDK stream.

``ExportVm`` (a powered-off VM) or ``ExportSnapshot`` (a running VM's
snapshot) hands out an ``HttpNfcLease``: wait until it is ``ready``, GET each
disk's device URL (a streamOptimized VMDK, flattened: no delta chain to
resolve), report progress at least every ``KEEPALIVE_S`` so the lease does not
time out, then complete it -- or abort it on any failure, so vCenter releases
the VM at once.

The lease is used through the few members pyVmomi's ``HttpNfcLease`` has
(``state``, ``info.deviceUrl``, ``error``, ``HttpNfcLeaseProgress``,
``HttpNfcLeaseComplete``, ``HttpNfcLeaseAbort``), so a stand-in lease serves
the tests (the simulator has no NFC export).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import requests

from imageport.disks.convert import ConvertResult, Progress, convert_stream
from imageport.disks.io import FileSystem
from imageport.errors import PlatformError, PlatformUnreachable
from imageport.models import DiskFormat
from imageport.platforms.vsphere.errors import translate_vsphere_errors
from imageport.storage.datastore_errors import check_status, translate_datastore_errors

KEEPALIVE_S = 30.0
READY_TIMEOUT_S = 600.0


def wait_until_ready(lease: Any, where: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with translate_vsphere_errors(where):
            state = str(lease.state)
        if state == "ready":
            return
        if state == "error":
            raise PlatformError(f"{where}: the export lease failed: {getattr(lease.error, 'msg', lease.error)}")
        if time.monotonic() > deadline:
            raise PlatformUnreachable(f"{where}: the export lease was not ready after {timeout_s:.0f} s")
        time.sleep(0.5)


def disk_urls(lease: Any, host: str) -> list[str]:
    """The disks' download URLs, in device order; vCenter writes the host as ``*``."""
    urls = [d.url.replace("://*", f"://{host}", 1) for d in lease.info.deviceUrl if getattr(d, "disk", True)]
    if not urls:
        raise PlatformError("the export lease lists no disks")
    return urls


class _KeepAlive(threading.Thread):
    """Report progress every few seconds: a lease without progress expires after a few minutes."""

    def __init__(self, lease: Any) -> None:
        super().__init__(name="nfc-keepalive", daemon=True)
        self.lease = lease
        self.percent = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(KEEPALIVE_S):
            try:
                self.lease.HttpNfcLeaseProgress(self.percent)
            except Exception:
                return


def export_from_lease(
    lease: Any,
    index: int,
    output: str,
    output_fs: FileSystem,
    fmt: DiskFormat,
    *,
    host: str,
    cookie: str | None,
    verify: bool | str,
    expected_size: int | None,
    overwrite: bool = False,
    progress: Progress | None = None,
    digests: bool = False,
    wait_lock: bool = False,
    verify_target: str = "auto",
) -> ConvertResult:
    """Stream disk ``index`` of a lease into ``output``; complete or abort the lease.

    ``expected_size`` (the disk's capacity) only scales the lease's progress; the stream's own
    header says how large the disk is.
    """
    where = f"NFC export to {output}"
    keepalive = _KeepAlive(lease)
    try:
        wait_until_ready(lease, where)
        url = disk_urls(lease, host)[index]
        keepalive.start()
        total = expected_size or 0

        def report(done: int, _total: int) -> None:
            if total:
                keepalive.percent = min(99, int(100 * done / total))
            if progress is not None:
                progress(done, total or done)

        headers = {"Cookie": cookie} if cookie else {}
        with translate_datastore_errors(f"download {url.split('?')[0]}"):
            response = requests.get(url, headers=headers, stream=True, verify=verify, timeout=(10, 300))
            check_status(response, f"download {url.split('?')[0]}")
            response.raw.decode_content = True
            result = convert_stream(
                response.raw,
                output,
                fmt,
                name=url.split("?")[0].rsplit("/", 1)[-1],
                overwrite=overwrite,
                progress=report,
                output_fs=output_fs,
                sha256=digests,
                md5=digests,
                wait_lock=wait_lock,
                verify=verify_target,
            )
    except BaseException:
        keepalive.stopped.set()
        with contextlib.suppress(Exception):  # the original failure is the one to report
            lease.HttpNfcLeaseAbort()  # release the VM now, not when the lease times out
        raise
    keepalive.stopped.set()
    with translate_vsphere_errors(f"{where}: complete the lease"):
        lease.HttpNfcLeaseProgress(100)
        lease.HttpNfcLeaseComplete()
    return result
