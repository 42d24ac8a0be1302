"""``reap``: delete expired compositing-engine resources of finished runs on every connector (scheduled)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.artifacts import create_markdown_artifact
from tasks.engine import reap_all


@flow(name="reap", log_prints=True)
def reap_flow(dry_run: bool = False, connectors: list[str] | None = None, run_id: str | None = None) -> dict[str, Any]:
    """Find every imageport-tagged resource; delete those past expiry whose run is over (or all of ``run_id``'s)."""
    report = reap_all(dry_run=dry_run, connectors=connectors, run_id=run_id)
    lines = report.lines()
    for line in lines:
        print(line)
    create_markdown_artifact(
        key="reap", markdown="## reap\n\n" + "\n".join(f"- {line}" for line in lines), description="What was reaped"
    )
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} resource(s) could not be deleted: " + "; ".join(report.failed))
    return report.__dict__
