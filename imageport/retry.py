"""The one retry policy of the core: attempts, backoff, the server's Retry-After, a deadline.

Every loop in the core that tries an operation again is a ``RetryPolicy.run``: a page write
(``transfer/pages.py``), a copy pass after a dropped session (``transfer/copy.py``), a
compositing engine's resource deletion (``engine/lifecycle.py``).

- ``attempts``: how many times the operation runs at most (the first one included);
- the delay before retry *n* is ``first_delay * backoff ** (n - 1)``, at most ``max_delay``;
- an error that carries the server's advice (``ImageportError.retry_after``: HTTP 429/503's
  ``Retry-After``) waits that long instead (capped at ``max_retry_after``);
- ``deadline``: seconds from the operation's *first failure*; a retry whose wait would end
  past it is not started. Time spent making progress before the fault does not count, so a
  long copy interrupted late still gets its retries, and a persistent fault ends in bounded
  time whatever the attempts.

When the policy gives up on an error it would have retried, the error is raised marked
(``ImageportError.gave_up``: ``attempts`` says how many were made, the message says so too).
The Prefect layer's task retries (``tasks/policy.py``) retry only transient errors the core
has *not* retried, so one fault is never retried by both (before: 4 passes x 4 task runs).

Python 3.9 (the agent bundle) compatible.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from imageport.errors import ImageportError

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """The default test: an error of the tree whose category says trying again may succeed."""
    return isinstance(exc, ImageportError) and exc.transient


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    first_delay: float
    backoff: float = 2.0
    max_delay: float = 60.0
    deadline: float | None = None
    max_retry_after: float = 300.0

    def delay(self, retry: int, error: BaseException | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based) after ``error``."""
        advised = getattr(error, "retry_after", None)
        if advised is not None:
            return min(max(float(advised), 0.0), self.max_retry_after)
        return min(self.first_delay * self.backoff ** (retry - 1), self.max_delay)

    def run(
        self,
        action: Callable[[], T],
        *,
        retry_on: Callable[[BaseException], bool] = is_transient,
        before_retry: Callable[[], None] | None = None,
        on_failure: Callable[[int, BaseException], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> T:
        """``action()``, tried again on errors ``retry_on`` accepts, as the policy allows.

        ``before_retry`` runs after each wait (e.g. log in again); ``on_failure(attempt, error)``
        sees every failure that will be retried or given up on. Other errors pass through at once.
        """
        first_failure: float | None = None
        waited = 0.0  # the waits themselves count even when ``sleep`` does not really sleep (tests)
        attempt = 0
        while True:
            attempt += 1
            try:
                return action()
            except Exception as exc:
                if not retry_on(exc):
                    raise
                if on_failure is not None:
                    on_failure(attempt, exc)
                now = clock()
                first_failure = now if first_failure is None else first_failure
                spent = max(now - first_failure, waited)
                wait = self.delay(attempt, exc)
                late = self.deadline is not None and spent + wait > self.deadline
                if attempt >= self.attempts or late:
                    if isinstance(exc, ImageportError):
                        exc.gave_up(attempt, spent)
                    raise
            sleep(wait)
            waited += wait
            if before_retry is not None:
                before_retry()

    def schedule(self, error: BaseException | None = None) -> list[float]:
        """The waits a fault that never clears goes through (``error`` gives the advice, if any)."""
        waits: list[float] = []
        spent = 0.0
        for retry in range(1, self.attempts):
            wait = self.delay(retry, error)
            if self.deadline is not None and spent + wait > self.deadline:
                break
            waits.append(wait)
            spent += wait
        return waits
