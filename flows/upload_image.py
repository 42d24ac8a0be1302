"""``upload-image``: the upload stage alone (Citrix's Copy-DiskToAzure), runnable from the UI or a schedule."""

from __future__ import annotations

from typing import Any

from prefect import flow

from imageport.models import UploadSpec
from tasks.artifacts import create_markdown_artifact
from tasks.checks import require_clean
from tasks.refusals import refusals_as_state
from tasks.upload import upload_image


@flow(name="upload-image", log_prints=True)
@refusals_as_state("spec")
def upload_image_flow(spec: UploadSpec) -> dict[str, Any]:
    require_clean(spec)  # every check before anything is created (tasks/checks)
    # The spec's timeout bounds the whole upload, as Citrix's upload timeout does.
    result = upload_image.with_options(timeout_seconds=spec.timeout_s)(spec)
    target = result.get("disk_id") or result.get("target")
    create_markdown_artifact(
        key="upload-image",
        markdown=(
            "| source | target | content hash | seconds |\n|---|---|---|---|\n"
            f"| {spec.source.path} | {target} | `{result['content_hash']}` | {result['seconds']:.1f} |\n"
        ),
        description="Result of upload-image",
    )
    return result
