"""The upload task: an image from shared storage onto the target platform (the target kind's adapter)."""

from __future__ import annotations

from prefect import task

from blocks.resolve import CONNECTORS
from imageport.adapters.registry import adapter_for, opened
from imageport.models import UploadSpec
from imageport.results import StageResult
from imageport.transfer.pages import DEFAULT_CHECKPOINTS
from tasks.engine import current_run_id
from tasks.policy import RETRY_TRANSIENT
from tasks.progress import prefect_progress


@task(name="upload_image", task_run_name="upload {spec.source.path}", **RETRY_TRANSIENT)
def upload_image(spec: UploadSpec) -> StageResult:
    """Upload ``spec.source`` to ``spec.target``: sparse, parallel, resumable, verified.

    A retry resumes: the managed disk keeps what arrived (its page ranges say so) and a local
    target keeps its checkpointed partial file.
    """
    adapter = adapter_for(spec.target)
    progress = prefect_progress(f"upload {spec.source.path} to {adapter.name(spec.target)}", timeout_s=spec.timeout_s)
    with opened(spec.source, CONNECTORS) as source:  # any readable kind
        return adapter.write_image(spec, source, CONNECTORS, progress=progress, run_id=current_run_id(),
                                   checkpoint_dir=DEFAULT_CHECKPOINTS)  # fmt: skip
