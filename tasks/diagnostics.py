"""The diagnostics task: a read-only report on an image (JSON + Markdown)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from blocks.resolve import located, writable
from imageport.disks.base import LOCAL
from imageport.disks.detect import detect_format
from imageport.errors import InputError
from imageport.guest.diagnostics import diagnose
from imageport.models import DiagnosticsSpec
from tasks.policy import RETRY_TRANSIENT


@task(name="diagnose_image", task_run_name="diagnose {spec.disk.kind} disk", **RETRY_TRANSIENT)
def diagnose_image(spec: DiagnosticsSpec) -> dict[str, Any]:
    with located(spec.disk) as (fs, path):
        if fs is not LOCAL:
            raise InputError(f"diagnostics reads a local image; a {spec.disk.kind} disk is read on its platform's CE")
        detect_format(path, expected=getattr(spec.disk, "format", None))  # damaged or not as stated: refused
        report = diagnose(path)
    result = {**report.as_dict(), "markdown": report.markdown()}
    if spec.output is not None:
        with writable(spec.output) as (out_fs, out_path):
            if out_fs is not LOCAL:
                raise InputError("diagnostics output: give a local connector path")
            report.save(Path(out_path))
    return result
