"""``publish-vdisk``: the publish stage alone, as Citrix's publish task with a Windows File Share connector.

Writes a prepared image into a PVS store and leaves the registration steps
beside it and in the run's artifacts.
"""

from __future__ import annotations

from prefect import flow

from imageport.models import PublishSpec
from imageport.results import StageResult
from tasks.artifacts import create_markdown_artifact, stage_markdown
from tasks.caching import located_result
from tasks.checks import require_clean
from tasks.publish import publish_vdisk
from tasks.refusals import refusals_as_state


@flow(name="publish-vdisk", log_prints=True)
@refusals_as_state("spec")
def publish_vdisk_flow(spec: PublishSpec) -> StageResult:
    require_clean(spec)  # every check before anything is created (tasks/checks)
    result = located_result(publish_vdisk(spec), spec.source, None)  # target: the vDisk file in the store
    create_markdown_artifact(key="publish-vdisk", markdown=stage_markdown(result),
                             description=f"Publish of vDisk {spec.name}")  # fmt: skip
    return result
