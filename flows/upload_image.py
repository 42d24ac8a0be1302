"""``upload-image``: the upload stage alone (Citrix's Copy-DiskToAzure), runnable from the UI or a schedule."""

from __future__ import annotations

from prefect import flow

from imageport.models import UploadSpec
from imageport.results import StageResult
from tasks.artifacts import create_markdown_artifact, stage_markdown
from tasks.caching import located_result
from tasks.checks import require_clean
from tasks.refusals import refusals_as_state
from tasks.upload import upload_image


@flow(name="upload-image", log_prints=True)
@refusals_as_state("spec")
def upload_image_flow(spec: UploadSpec) -> StageResult:
    require_clean(spec)  # every check before anything is created (tasks/checks)
    # The spec's timeout bounds the whole upload, as Citrix's upload timeout does (checked in the upload loop).
    result = located_result(upload_image(spec), spec.source, spec.target)
    create_markdown_artifact(key="upload-image", markdown=stage_markdown(result), description="Result of upload-image")
    return result
