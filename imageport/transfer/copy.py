"""Copy an image between any two file systems, surviving dropped connections.

``convert`` does one pass. This wraps it for long copies over a network: the
output is resumable where the format allows (``StagedSink``), and a transient
failure (a dropped SMB session, a sharing violation the dead session left
behind, a timeout) logs in again and re-runs the pass, which skips what the
interrupted attempt made durable. Bad input and refused access stop at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from imageport.disks.convert import CHECKPOINT_SECONDS, ConvertResult, Progress, convert
from imageport.disks.io import FileSystem
from imageport.disks.staged import RESUMABLE_FORMATS
from imageport.errors import ImageportError
from imageport.models import DiskFormat

RETRY_DELAYS = (1.0, 4.0, 15.0)


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
    attempts = 0
    while True:
        attempts += 1
        try:
            result = convert(
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
        except ImageportError as exc:
            # Without a resumable output a retry starts over, which a caller's own retry does as well.
            if not exc.transient or not resumable or attempts > len(RETRY_DELAYS):
                raise
            sleep(RETRY_DELAYS[attempts - 1])
            for fs in {id(source_fs): source_fs, id(output_fs): output_fs}.values():
                fs.reconnect()
            continue
        result.attempts = attempts
        return result
