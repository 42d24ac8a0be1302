"""``reap``: delete expired compositing-engine resources of finished runs on every connector (scheduled)."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow

from imageport.forms import Titled
from tasks.artifacts import create_markdown_artifact
from tasks.engine import reap_all


@flow(name="reap", log_prints=True)
def reap_flow(
    dry_run: bool = False,
    connectors: Annotated[list[str], Titled("Some connectors")] | None = None,
    run_id: str = "",
) -> dict[str, Any]:
    """Find every imageport-tagged resource; delete those past expiry whose run is over (or all of ``run_id``'s).

    Args:
        dry_run: Only list what would be deleted.
        connectors: Connector names to look on (None: every saved connector).
        run_id: Delete every resource of this one ended run, expired or not (empty: none named).
    """
    report = reap_all(dry_run=dry_run, connectors=connectors, run_id=run_id or None)
    lines = report.lines()
    for line in lines:
        print(line)
    create_markdown_artifact(
        key="reap", markdown="## reap\n\n" + "\n".join(f"- {line}" for line in lines), description="What was reaped"
    )
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} resource(s) could not be deleted: " + "; ".join(report.failed))
    return report.__dict__
