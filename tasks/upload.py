"""The upload task: an image from shared storage onto the target platform (the target kind's adapter)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.runtime import task_run

from blocks.resolve import CONNECTORS
from imageport.adapters.protocol import Opened
from imageport.adapters.registry import adapter_for, opened
from imageport.models import UploadSpec
from imageport.results import StageResult
from imageport.transfer.fanout import SinkOutcome
from imageport.transfer.pages import DEFAULT_CHECKPOINTS
from tasks.engine import current_run_id
from tasks.policy import RETRY_TRANSIENT
from tasks.progress import prefect_progress


@task(name="upload_image", task_run_name="upload {spec.source.path}", **RETRY_TRANSIENT)
def upload_image(spec: UploadSpec, streamed: SinkOutcome | None = None) -> StageResult:
    """Upload ``spec.source`` to ``spec.target``: sparse, parallel, resumable, verified.

    ``streamed``: the port's export already streamed the image into this target (``tasks/streaming.py``);
    the task completes from that sink's result, or fails with its error. A retry of a failed stream (a
    transient error) uploads from the staging file instead, as does every later run. A retry resumes: the
    managed disk keeps what arrived (its page ranges say so) and a local target keeps its checkpointed
    partial file.
    """
    if streamed is not None and (streamed.error is None or task_run.run_count <= 1):
        result: StageResult = streamed.result()
        return result
    adapter = adapter_for(spec.target)
    progress = prefect_progress(f"upload {spec.source.path} to {adapter.name(spec.target)}", timeout_s=spec.timeout_s)
    with opened(spec.source, CONNECTORS) as source:  # any readable kind
        return write_upload(spec, source, progress, current_run_id())


def write_upload(spec: UploadSpec, source: Opened, progress: Any, run_id: str) -> StageResult:
    """The upload itself, from ``source`` (opened by the caller: the staging file, or the export's stream)."""
    return adapter_for(spec.target).write_image(spec, source, CONNECTORS, progress=progress, run_id=run_id,
                                                checkpoint_dir=DEFAULT_CHECKPOINTS)  # fmt: skip
