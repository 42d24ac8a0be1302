"""The upload task: an image from shared storage onto the target platform (the target kind's adapter)."""

from __future__ import annotations

from typing import Any

from prefect import task

from blocks.resolve import CONNECTORS
from imageport.adapters.registry import adapter_for
from imageport.disks.convert import ConvertResult
from imageport.models import UploadSpec
from imageport.transfer.pages import DEFAULT_CHECKPOINTS
from tasks.engine import current_run_id
from tasks.policy import RETRY_TRANSIENT
from tasks.progress import prefect_progress


def _as_dict(spec: UploadSpec, result: Any) -> dict[str, Any]:
    """The task's result: a file target's ``ConvertResult``, or a managed disk's upload outcome."""
    if isinstance(result, ConvertResult):
        return {**result.as_dict(), "target": adapter_for(spec.target).name(spec.target)}
    return {**result.transfer.__dict__, "disk_id": result.disk_id, "resumed_disk": result.resumed_disk,
            "run_id": result.run_id, "revoked_leftover": result.revoked_leftover}  # fmt: skip


@task(name="upload_image", task_run_name="upload {spec.source.path}", **RETRY_TRANSIENT)
def upload_image(spec: UploadSpec) -> dict[str, Any]:
    """Upload ``spec.source`` to ``spec.target``: sparse, parallel, resumable, verified.

    A retry resumes: the managed disk keeps what arrived (its page ranges say so) and a local
    target keeps its checkpointed partial file.
    """
    adapter = adapter_for(spec.target)
    progress = prefect_progress(f"upload {spec.source.path} to {adapter.name(spec.target)}")
    result = adapter.write_image(spec, CONNECTORS, progress=progress, run_id=current_run_id(),
                                 checkpoint_dir=DEFAULT_CHECKPOINTS)  # fmt: skip
    return _as_dict(spec, result)
