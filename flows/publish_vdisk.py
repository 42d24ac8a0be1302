"""``publish-vdisk``: the publish stage alone, as Citrix's publish task with a Windows File Share connector.

Writes a prepared image into a PVS store and leaves the registration steps
beside it and in the run's artifacts.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from imageport.models import PublishSpec
from tasks.artifacts import create_markdown_artifact
from tasks.checks import require_clean
from tasks.publish import publish_vdisk
from tasks.refusals import refusals_as_state


@flow(name="publish-vdisk", log_prints=True)
@refusals_as_state("spec")
def publish_vdisk_flow(spec: PublishSpec) -> dict[str, Any]:
    require_clean(spec)  # every check before anything is created (tasks/checks)
    result = publish_vdisk(spec)
    create_markdown_artifact(
        key="publish-vdisk",
        markdown=(
            f"## vDisk {result['vdisk']} published\n\n"
            "| store | file | version | virtual size | content hash | resumed |\n|---|---|---|---|---|---|\n"
            f"| {result['store']} | {result['file']} | {result['version']} | {result['virtual_size']:,} | "
            f"`{result['content_hash']}` | {result['resumed']} |\n\n"
            f"### Register it (saved as {result['registration_file']})\n\n"
            f"```powershell\n{result['registration']}\n```\n"
        ),
        description=f"Publish of vDisk {result['vdisk']}",
    )
    return result
