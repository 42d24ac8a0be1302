"""Copy an image between any two file systems, surviving dropped connections.

``convert`` does one pass. This wraps it for long copies over a network: the
output is resumable where the format allows (``StagedSink``), and a transient
failure (a dropped SMB session, a sharing violation the dead session left
behind, a timeout) logs in again and re-runs the pass, which skips what the
interrupted attempt made durable (``COPY_RETRY``, ``imageport.retry``). Bad input and
refused access stop at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from imageport.disks.convert import CHECKPOINT_SECONDS, ConvertResult, Progress, convert
from imageport.disks.io import FileSystem
from imageport.disks.staged import RESUMABLE_FORMATS
from imageport.models import DiskFormat
from imageport.retry import RetryPolicy, is_transient

# A pass after a dropped connection: 1, 4, 15 s apart, for at most two minutes from the first failure.
COPY_RETRY = RetryPolicy(attempts=4, first_delay=1.0, backoff=4.0, max_delay=15.0, deadline=120.0)


def copy_image(
    source: str,
    source_fs: FileSystem,
    output: str,
    output_fs: FileSystem,
    fmt: DiskFormat,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    wait_lock: bool = False,
    **convert_options: Any,
) -> ConvertResult:
    """``convert`` with resume and reconnect; ``result.attempts`` says how many passes it took.

    Another run writing ``output`` is not a transient failure: ``OutputBusy`` at once, or
    ``wait_lock`` waits for its lock."""
    resumable = fmt in RESUMABLE_FORMATS
    passes = 0

    def one_pass() -> ConvertResult:
        nonlocal passes
        passes += 1
        return convert(
            source,
            output,
            fmt,
            overwrite=overwrite,
            progress=progress,
            source_fs=source_fs,
            output_fs=output_fs,
            resumable=resumable,
            checkpoint_seconds=checkpoint_seconds,
            wait_lock=wait_lock,
            **convert_options,
        )

    def reconnect() -> None:
        for fs in {id(source_fs): source_fs, id(output_fs): output_fs}.values():
            fs.reconnect()

    # Without a resumable output a retry starts over, which a caller's own retry does as well.
    result = COPY_RETRY.run(
        one_pass, retry_on=lambda exc: resumable and is_transient(exc), before_retry=reconnect, sleep=sleep
    )
    result.attempts = passes
    return result
