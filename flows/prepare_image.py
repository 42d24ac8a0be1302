"""``prepare-image``: the prepare stage alone on the local platform: a verified, prepared copy."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from imageport.models import PrepareSpec
from tasks.prepare import prepare_disk


@flow(name="prepare-image", log_prints=True)
def prepare_image_flow(spec: PrepareSpec) -> dict[str, Any]:
    result = prepare_disk.with_options(timeout_seconds=spec.timeout_s)(spec)
    changes = "\n".join(f"- `{c}`" for c in result["changes"]) or "- nothing to change"
    create_markdown_artifact(
        key="prepare-image",
        markdown=(
            f"## {result['output']} prepared for {result['platform']} {result['generation']} "
            f"({result['provisioning']})\n\nverified: {result['verified']}; appliance launch "
            f"{result['launch_s']:.1f} s, work {result['work_s']:.1f} s\n\n{changes}\n"
        ),
        description="What prepare changed",
    )
    return result
