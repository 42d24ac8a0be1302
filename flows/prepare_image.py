"""``prepare-image``: the prepare stage alone: a verified, prepared copy made by a compositing engine."""

from __future__ import annotations

from prefect import flow

from imageport.models import PrepareSpec
from imageport.results import StageResult
from tasks.artifacts import create_markdown_artifact, stage_markdown
from tasks.caching import located_result
from tasks.checks import require_clean
from tasks.engine import reap_run_resources
from tasks.prepare import prepare_disk
from tasks.refusals import refusals_as_state


# Prefect does not promise ``finally`` on cancellation: the hooks remove this run's CE resources.
@flow(name="prepare-image", log_prints=True, on_cancellation=[reap_run_resources], on_crashed=[reap_run_resources])
@refusals_as_state("spec")
def prepare_image_flow(spec: PrepareSpec) -> StageResult:
    require_clean(spec)  # every check before anything is created (tasks/checks)
    # An output named only by the disk's platform (an Azure disk, a default local name) keeps its platform id.
    result = located_result(prepare_disk(spec), spec.disk, spec.output)
    create_markdown_artifact(key="prepare-image", markdown=stage_markdown(result), description="What prepare changed")
    return result
