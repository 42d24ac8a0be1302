"""``export-disk``: the export stage alone (Citrix's export task): a platform disk onto a share."""

from __future__ import annotations

from prefect import flow

from imageport.models import ExportSpec
from imageport.results import StageResult
from tasks.artifacts import create_markdown_artifact, stage_markdown
from tasks.caching import located_result
from tasks.checks import require_clean
from tasks.export import export_disk
from tasks.refusals import refusals_as_state


@flow(name="export-disk", log_prints=True)
@refusals_as_state("spec")
def export_disk_flow(spec: ExportSpec) -> StageResult:
    require_clean(spec)  # every check before anything is created (tasks/checks)
    exported = export_disk(spec)  # its timeout: enforced in the transfer loop
    result = located_result(exported, spec.source, spec.destination)
    create_markdown_artifact(key="export-disk", markdown=stage_markdown(result), description="Result of export-disk")
    return result
