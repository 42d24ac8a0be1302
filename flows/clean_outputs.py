"""``clean-outputs``: remove what dead runs left in a folder (``imageport clean`` as a flow).

Stale partial files, their sidecars, dead runs' lock files, and the old file of
a replace that was killed half-way (renamed back); a live run's files are
listed as in use and kept. See ``imageport.disks.leftovers``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from blocks.resolve import located
from imageport.disks.leftovers import clean_folder
from imageport.models import FileRef
from tasks.refusals import refusals_as_state


@task(name="clean_folder", task_run_name="clean {folder.path}")
def clean_task(folder: FileRef, dry_run: bool) -> dict[str, Any]:
    with located(folder) as (fs, path):
        report = clean_folder(fs.output_store(), "" if path in (".", "") else path, dry_run=dry_run)
    return report.model_dump()


@flow(name="clean-outputs", log_prints=True)
@refusals_as_state("")
def clean_outputs(folder: FileRef, dry_run: bool = False) -> dict[str, Any]:
    """Remove stale partial files, sidecars and dead runs' locks from a folder; a live run's are kept.

    Args:
        folder: The folder to clean (share or local connector path).
        dry_run: Only list what would be removed.
    """
    report = clean_task(folder, dry_run)
    for leftover in report["files"]:
        print(f"{leftover['state']}: {leftover['name']}" + (f" ({leftover['owner']})" if leftover["owner"] else ""))
    return report
