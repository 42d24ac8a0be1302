"""Tasks about connectors."""

from __future__ import annotations

from prefect import task

from blocks.registry import find_connector
from tasks.policy import RETRY_TRANSIENT


@task(
    name="check_connector",
    task_run_name="check {name}",
    **RETRY_TRANSIENT,
)
def check_connector(name: str) -> dict[str, object]:
    """Log in with a saved connector and prove it can do its job (see each adapter's ``check``)."""
    kind, block = find_connector(name)
    return {"name": name, "kind": kind, "checks": block.build().check()}
