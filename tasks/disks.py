"""Tasks over the disk engine."""

from __future__ import annotations

from typing import Any

from prefect import task

from blocks.registry import find_connector
from imageport.disks.convert import convert
from imageport.errors import InputError
from imageport.models import DiskFormat, LocalRef
from imageport.storage.local import LocalDirectory
from tasks.policy import RETRY_TRANSIENT
from tasks.progress import prefect_progress


def local_path(ref: LocalRef) -> str:
    kind, block = find_connector(ref.connector)
    directory = block.build()
    if not isinstance(directory, LocalDirectory):
        raise InputError(f"connector {ref.connector!r} is a {kind} connector, not a local one")
    return str(directory.path(ref.path))


@task(
    name="convert_image",
    task_run_name="convert {source.path} -> {output.path}",
    **RETRY_TRANSIENT,
)
def convert_image(
    source: LocalRef, output: LocalRef, fmt: DiskFormat, size: int | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Convert an image between formats, hashing the virtual disk on the way."""
    src, dst = local_path(source), local_path(output)
    progress = prefect_progress(f"convert {source.path} to {fmt.value}")
    result = convert(src, dst, fmt, size=size, overwrite=overwrite, progress=progress)
    return {**result.as_dict(), "source": source.path, "output": output.path}
