"""``prepare-image``: the prepare stage alone: a verified, prepared copy made by a compositing engine."""

from __future__ import annotations

from typing import Any

from prefect import flow

from imageport.models import PrepareSpec
from tasks.artifacts import create_markdown_artifact
from tasks.checks import require_clean
from tasks.engine import reap_run_resources
from tasks.prepare import prepare_disk
from tasks.refusals import refusals_as_state


# Prefect does not promise ``finally`` on cancellation: the hooks remove this run's CE resources.
@flow(name="prepare-image", log_prints=True, on_cancellation=[reap_run_resources], on_crashed=[reap_run_resources])
@refusals_as_state("spec")
def prepare_image_flow(spec: PrepareSpec) -> dict[str, Any]:
    require_clean(spec)  # every check before anything is created (tasks/checks)
    result = prepare_disk.with_options(timeout_seconds=spec.timeout_s)(spec)
    changes = "\n".join(f"- `{c}`" for c in result["changes"]) or "- nothing to change"
    create_markdown_artifact(
        key="prepare-image",
        markdown=(
            f"## {result['output']} prepared for {result['platform']} {result['generation']} "
            f"({result['provisioning']})\n\nverified: {result['verified']}; appliance launch "
            f"{result['launch_s']:.1f} s, work {result['work_s']:.1f} s\n\n{changes}\n\n"
            f"compositing engine resources (all deleted but the output): {', '.join(result['ce_resources'])}\n"
        ),
        description="What prepare changed",
    )
    return result
