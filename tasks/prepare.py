"""The prepare task: a prepared copy of an image, verified; the source is never written."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from prefect import task

from blocks.resolve import located
from imageport.disks.base import LOCAL
from imageport.errors import InputError
from imageport.guest.plan import PrepareTarget
from imageport.guest.prepare import prepare_copy
from imageport.models import LocalRef, PrepareOptions, PrepareSpec
from tasks.policy import RETRY_TRANSIENT


def _output_ref(spec: PrepareSpec) -> LocalRef:
    if spec.output is not None:
        return spec.output
    assert isinstance(spec.disk, LocalRef)
    stem, ext = posixpath.splitext(spec.disk.path)
    return LocalRef(connector=spec.disk.connector, path=f"{stem}-prepared{ext}")


@task(name="prepare_image", task_run_name="prepare {spec.disk.kind} disk for {spec.target_platform.value}",
      **RETRY_TRANSIENT)  # fmt: skip
def prepare_disk(spec: PrepareSpec) -> dict[str, Any]:
    """Copy the image, prepare the copy in one appliance launch, verify (``prepare_copy``)."""
    if not isinstance(spec.disk, LocalRef):
        raise InputError(
            f"a {spec.disk.kind} disk is prepared on a compositing engine on its platform; here only local "
            "images are prepared (export it to the local platform first)"
        )
    options = PrepareOptions.model_validate(spec.model_dump(include=set(PrepareOptions.model_fields)))
    target = PrepareTarget(spec.target_platform, spec.hyper_v_generation, options)
    output_ref = _output_ref(spec)
    installers = None
    if spec.installers is not None:
        with located(spec.installers) as (fs, path):
            if fs is not LOCAL:
                raise InputError("installers: stage them from a local folder (a local connector path)")
            installers = Path(path)
    with located(spec.disk) as (source_fs, source), located(output_ref) as (_, output):
        result = prepare_copy(source, source_fs, output, target, installers_dir=installers, overwrite=spec.overwrite)
    return {**result.as_dict(), "output": output_ref.path}
