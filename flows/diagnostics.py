"""``diagnostics``: a read-only report on an image, as Citrix's diagnostics task, shown in the run's artifacts.

Read where the disk lives: a local image in place, an Azure disk or snapshot or a vSphere datastore disk on a
compositing engine of its connector (tasks/diagnostics.py)."""

from __future__ import annotations

from prefect import flow

from imageport.models import DiagnosticsSpec
from imageport.results import DiagnosticsResult
from tasks.artifacts import create_markdown_artifact
from tasks.checks import require_clean
from tasks.diagnostics import diagnose_image
from tasks.refusals import refusals_as_state


@flow(name="diagnostics", log_prints=True)
@refusals_as_state("spec")
def diagnostics_flow(spec: DiagnosticsSpec) -> DiagnosticsResult:
    require_clean(spec)  # every check before anything is created (tasks/checks)
    result = diagnose_image(spec)
    saved = f" (saved as {', '.join(result.saved)})" if result.saved else ""
    create_markdown_artifact(key="diagnostics", markdown=result.markdown, description=f"Image diagnostics{saved}")
    return result
