"""``convert-disk``: convert an image between formats and stores (local or share connectors), with its content hash.

The single-stage building block under export/upload/publish; runnable alone
from the UI, the API or a schedule.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from imageport.models import DiskFormat, FileRef
from tasks.artifacts import create_markdown_artifact
from tasks.disks import convert_image
from tasks.refusals import refusals_as_state


@flow(name="convert-disk", log_prints=True)
@refusals_as_state("")
def convert_disk(
    source: FileRef,
    output: FileRef,
    format: DiskFormat = DiskFormat.VHDX,
    size: int = 0,
    overwrite: bool = False,
    wait_lock: bool = False,
) -> dict[str, Any]:
    """Convert or copy an image between formats and stores, with its content hash.

    Args:
        source: The image file to read (share or local connector).
        output: Where the converted image is written.
        format: Container format written.
        size: Virtual size of the output in bytes (0: the source's size).
        overwrite: Replace an existing output file.
        wait_lock: Wait while another run writes the same output file, instead of failing.
    """
    result = convert_image(source, output, format, size=size or None, overwrite=overwrite, wait_lock=wait_lock)
    create_markdown_artifact(
        key="convert-disk",
        markdown=(
            "| source | output | format | virtual size | data written | content hash | seconds |\n"
            "|---|---|---|---|---|---|---|\n"
            f"| {result['source']} | {result['output']} | {result['format']} | {result['virtual_size']:,} | "
            f"{result['data_written']:,} | `{result['content_hash']}` | {result['seconds']:.1f} |\n"
        ),
        description="Result of convert-disk",
    )
    return result
