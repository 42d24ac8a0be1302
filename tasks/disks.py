"""Tasks over the disk engine."""

from __future__ import annotations

from typing import Any

from prefect import task

from blocks.resolve import located, writable
from imageport.models import DiskFormat, FileRef
from imageport.transfer.copy import copy_image
from tasks.policy import RETRY_TRANSIENT
from tasks.progress import prefect_progress


@task(
    name="convert_image",
    task_run_name="convert {source.path} -> {output.path}",
    **RETRY_TRANSIENT,
)
def convert_image(
    source: FileRef,
    output: FileRef,
    fmt: DiskFormat,
    size: int | None = None,
    overwrite: bool = False,
    wait_lock: bool = False,
) -> dict[str, Any]:
    """Convert an image between formats and stores, hashing the virtual disk on the way.

    Resumable where the format allows: a retry after a dropped connection continues from the
    last checkpoint instead of starting over.
    """
    progress = prefect_progress(f"convert {source.path} to {fmt.value}")
    with located(source) as (source_fs, src), writable(output) as (output_fs, dst):
        result = copy_image(
            src, source_fs, dst, output_fs, fmt, size=size, overwrite=overwrite, progress=progress,
            wait_lock=wait_lock, source_format=source.format,
        )  # fmt: skip
    return {**result.as_dict(), "source": source.path, "output": output.path}
