"""``finalize-image``: the finalize stage alone: boot a prepared image once until its startup actions are done."""

from __future__ import annotations

from prefect import flow

from imageport.models import FinalizeSpec
from imageport.results import StageResult
from tasks.artifacts import create_markdown_artifact, stage_markdown
from tasks.caching import located_result
from tasks.checks import require_clean
from tasks.engine import reap_run_resources
from tasks.finalize import finalize_disk
from tasks.refusals import refusals_as_state


# Prefect does not promise ``finally`` on cancellation: the hooks remove this run's helper VM.
@flow(name="finalize-image", log_prints=True, on_cancellation=[reap_run_resources], on_crashed=[reap_run_resources])
@refusals_as_state("spec")
def finalize_image_flow(spec: FinalizeSpec) -> StageResult:
    """Boot a prepared image once in a helper VM on its platform, until its startup actions report done.

    Args:
        spec: The prepared disk, the timeout and the helper VM's size.
    """
    require_clean(spec)  # the disk's connector, and a kind whose platform boots it (tasks/checks)
    result = located_result(finalize_disk(spec), spec.disk, spec.disk)
    create_markdown_artifact(key="finalize-image", markdown=stage_markdown(result),
                             description="The startup actions the finalize boot ran")  # fmt: skip
    return result
