"""``check-connectors``: test every saved connector (or some), report as a table.

A diagnostics flow an operator can schedule (e.g. hourly) to learn that a
share password expired *before* the monthly patch-day port fails on it.
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from prefect.states import Failed

from blocks.registry import list_connectors
from imageport.errors import ImageportError
from imageport.forms import Titled
from tasks.artifacts import create_markdown_artifact
from tasks.connectors import check_connector


@flow(name="check-connectors", log_prints=True)
def check_connectors(names: Annotated[list[str], Titled("Some connectors")] | None = None) -> list[dict[str, object]]:
    """Check each named connector (default: all saved ones) in parallel.

    Args:
        names: Connector names to check (None: every saved connector).
    """
    kinds = {name: kind for kind, name in list_connectors()}
    names = names or list(kinds)
    futures = {name: check_connector.submit(name) for name in names}
    report: list[dict[str, object]] = []
    for name, future in futures.items():
        future.wait()
        state = future.state
        if state.is_completed():
            report.append({**future.result(), "ok": True})
        else:
            exc = state.result(raise_on_failure=False)
            message = str(exc) if isinstance(exc, ImageportError) else repr(exc)
            report.append({"name": name, "kind": kinds.get(name, "?"), "ok": False, "error": message})
    rows = "\n".join(
        f"| {r['name']} | {r.get('kind', '?')} | {'ok' if r['ok'] else 'FAILED'} | "
        f"{'; '.join(r['checks']) if r['ok'] else r['error']} |"  # type: ignore[arg-type]
        for r in report
    )
    create_markdown_artifact(
        key="connector-check",
        markdown=f"# Connector check\n\n| connector | kind | result | details |\n|---|---|---|---|\n{rows}\n",
        description="Result of check-connectors",
    )
    failed = [r["name"] for r in report if not r["ok"]]
    if failed:
        return Failed(message=f"{len(failed)} connector(s) failed: {', '.join(map(str, failed))}", data=report)
    return report
