"""Run artifacts, redacted: the one way tasks and flows publish a report to the Prefect UI.

An artifact is an output edge like the console: it may name a source or a target, so its text
passes through ``imageport.redaction`` before it leaves.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.artifacts import create_markdown_artifact as _create_markdown_artifact
from prefect.artifacts import create_progress_artifact as _create_progress_artifact

from imageport.redaction import redact


def create_markdown_artifact(*, key: str | None = None, markdown: str, description: str | None = None) -> Any:
    return _create_markdown_artifact(
        key=key, markdown=redact(markdown), description=redact(description) if description else None
    )


def create_progress_artifact(*, progress: float, description: str | None = None) -> UUID:
    return _create_progress_artifact(progress=progress, description=redact(description) if description else None)
