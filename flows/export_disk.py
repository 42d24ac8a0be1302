"""``export-disk``: the export stage alone (Citrix's export task): a platform disk onto a share."""

from __future__ import annotations

from typing import Any

from prefect import flow

from imageport.models import ExportSpec
from tasks.artifacts import create_markdown_artifact
from tasks.checks import require_clean
from tasks.export import export_disk
from tasks.refusals import refusals_as_state


@flow(name="export-disk", log_prints=True)
@refusals_as_state("spec")
def export_disk_flow(spec: ExportSpec) -> dict[str, Any]:
    require_clean(spec)  # every check before anything is created (tasks/checks)
    result = export_disk.with_options(timeout_seconds=spec.timeout_s)(spec)
    create_markdown_artifact(
        key="export-disk",
        markdown=(
            "| destination | virtual size | content hash | sha256 | md5 |\n|---|---|---|---|---|\n"
            f"| {spec.destination.path} | {result['virtual_size']:,} | `{result['content_hash']}` | "
            f"`{result.get('sha256') or '-'}` | `{result.get('md5') or '-'}` |\n"
        ),
        description="Result of export-disk",
    )
    return result
