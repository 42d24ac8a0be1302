"""``imageport reap``: delete expired compositing-engine resources of finished runs, on every connector."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.output import console, emit_json, reports_errors
from imageport.errors import EngineError


@reports_errors
def reap(
    dry_run: Annotated[bool, typer.Option(help="Only say what would be deleted")] = False,
    connector: Annotated[list[str] | None, typer.Option("--connector", "-c", help="Only these connectors")] = None,
    run: Annotated[str | None, typer.Option(help="Remove everything of this (ended) run, expired or not")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Find every resource imageport tagged; delete those past expiry whose run is over (never untagged ones)."""
    from tasks.engine import reap_all, run_is_live

    if run is not None and run_is_live(run):
        raise EngineError(f"run {run} is still live; cancel it first (its CE is removed when it ends)")
    report = reap_all(dry_run=dry_run, connectors=connector or None, run_id=run)
    if as_json:
        emit_json(report.__dict__)
    else:
        for line in report.lines():
            console.print(line, highlight=False, soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)
