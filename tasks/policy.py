"""Prefect's task retries: only for what the core has not already retried.

Bad input, refused credentials, a corrupt image: retrying cannot help and only
delays the clear error. ``ImageportError.transient`` (set by the error tree's
``Unreachable`` category) says whether trying again may succeed at all.

Decision (issue 15): the core retries a transient fault where it happens, within
a stage, by its one policy (``imageport.retry``: attempts, backoff, Retry-After,
a deadline from the first failure); when it gives up, the error is marked
(``ImageportError.attempts``). A task is retried here only for a transient error
the core did *not* retry -- one raised outside any retry loop, e.g. a login that
timed out before the stage began. So one fault costs one policy's attempts,
never the product of two (before: 4 copy passes x 4 task runs = 16).
"""

from __future__ import annotations

from typing import Any

from imageport.errors import ImageportError

# Back-off between attempts, seconds: enough for a dropped session or a 503 to pass.
TRANSIENT_RETRY_DELAYS = [2, 10, 30]


def is_transient(exc: BaseException | None) -> bool:
    return isinstance(exc, ImageportError) and exc.transient


def worth_a_task_retry(exc: BaseException | None) -> bool:
    """Transient, and not already retried by the core (which gave up on it)."""
    return is_transient(exc) and isinstance(exc, ImageportError) and not exc.core_gave_up


def retry_only_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: True when the failure is worth another attempt."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return worth_a_task_retry(exc)


# Spread into every task that talks to a platform or store: ``@task(name=..., **RETRY_TRANSIENT)``.
RETRY_TRANSIENT: dict[str, Any] = {
    "retries": len(TRANSIENT_RETRY_DELAYS),
    "retry_delay_seconds": TRANSIENT_RETRY_DELAYS,
    "retry_condition_fn": retry_only_transient,
}
