"""Retry policy shared by every task: retry transient errors only.

Bad input, refused credentials, a corrupt image: retrying cannot help and only
delays the clear error. ``ImageportError.transient`` (set by the error tree's
``Unreachable`` category) is the single source of truth.
"""

from __future__ import annotations

from typing import Any

from imageport.errors import ImageportError

# Back-off between attempts, seconds: enough for a dropped session or a 503 to pass.
TRANSIENT_RETRY_DELAYS = [2, 10, 30]


def is_transient(exc: BaseException | None) -> bool:
    return isinstance(exc, ImageportError) and exc.transient


def retry_only_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: True when the failure is worth another attempt."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return is_transient(exc)


# Spread into every task that talks to a platform or store: ``@task(name=..., **RETRY_TRANSIENT)``.
RETRY_TRANSIENT: dict[str, Any] = {
    "retries": len(TRANSIENT_RETRY_DELAYS),
    "retry_delay_seconds": TRANSIENT_RETRY_DELAYS,
    "retry_condition_fn": retry_only_transient,
}
