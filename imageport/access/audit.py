"""Who did what: which calls change state (audited), and the ``imageport-by:USER`` tag on runs created.

The tag is set by the gateway from the authenticated identity, never taken from the caller: a client's
own ``imageport-by:`` tags are dropped before the gateway's is added, so the tag cannot be forged.
"""

from __future__ import annotations

import json

from imageport.access.policy import json_body

BY_TAG = "imageport-by:"
# Routes that create flow runs: their body (one run, or a list for the bulk route) gets the tag.
RUN_CREATES = {
    ("POST", "/deployments/{id}/create_flow_run"),
    ("POST", "/deployments/{id}/create_flow_run/bulk"),
    ("POST", "/flow_runs/"),
}
# POST routes that only read (Prefect filters with a POST body): not audited.
READ_ENDINGS = (
    "/filter", "/count", "/paginate", "/history", "/lateness", "/next-runs", "/count-deployments",
    "/count-task-runs", "/counts", "/validate", "/concurrency_status", "/filter/next",
)  # fmt: skip


def mutates(method: str, template: str) -> bool:
    if method in ("GET", "HEAD", "OPTIONS", "WS"):
        return False
    return not (method == "POST" and (template.endswith(READ_ENDINGS) or "/count-by/" in template))


def creates_runs(method: str, template: str) -> bool:
    return (method, template) in RUN_CREATES


def _tagged(run: object, user: str) -> object:
    if not isinstance(run, dict):
        return run  # not a run body: Prefect refuses it with its own 422
    tags = run.get("tags")
    kept = [t for t in tags if not (isinstance(t, str) and t.startswith(BY_TAG))] if isinstance(tags, list) else []
    return {**run, "tags": [*kept, BY_TAG + user]}


def tag_runs(body: bytes, user: str) -> bytes:
    """The create body with the caller's tag; a body that is not JSON goes on unchanged (Prefect says 422)."""
    try:
        data = json_body(body) if body else {}
    except ValueError:
        return body
    data = [_tagged(run, user) for run in data] if isinstance(data, list) else _tagged(data, user)
    return json.dumps(data).encode()


def started_by(tags: list[str]) -> str | None:
    """The user who created a run, from its tag (None: started by a schedule or before the gateway)."""
    return next((t.removeprefix(BY_TAG) for t in tags if t.startswith(BY_TAG)), None)
