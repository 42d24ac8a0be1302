"""``diagnostics``: a read-only report on an image, as Citrix's diagnostics task, shown in the run's artifacts."""

from __future__ import annotations

from typing import Any

from prefect import flow

from imageport.models import DiagnosticsSpec
from tasks.artifacts import create_markdown_artifact
from tasks.checks import require_clean
from tasks.diagnostics import diagnose_image
from tasks.refusals import refusals_as_state


@flow(name="diagnostics", log_prints=True)
@refusals_as_state("spec")
def diagnostics_flow(spec: DiagnosticsSpec) -> dict[str, Any]:
    require_clean(spec)  # every check before anything is created (tasks/checks)
    result = diagnose_image(spec)
    create_markdown_artifact(key="diagnostics", markdown=result["markdown"], description="Image diagnostics")
    return result
