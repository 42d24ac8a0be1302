"""A stage's timeout, enforced where it can act: in the transfer loop, through its progress callback.

The copy and upload loops call ``progress(done, total)`` between pieces (``disks/convert.py``'s pump,
``transfer/pages.py``). ``with_deadline`` wraps that callback so the first call past the deadline raises
``StageTimeout`` from inside the loop: the loop stops at its next step, its checkpoints stay (a re-run
resumes), and no thread is left running. Prefect's task ``timeout_seconds`` cannot do this -- it cannot
interrupt a blocking call, and says so in a warning.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from imageport.errors import StageTimeout

Progress = Callable[[int, int], None]


def with_deadline(
    progress: Progress | None, timeout_s: float, what: str, clock: Callable[[], float] = time.monotonic
) -> Progress:
    """``progress`` that raises ``StageTimeout`` (naming ``what``) once ``timeout_s`` has passed since now."""
    deadline = clock() + timeout_s

    def report(done: int, total: int) -> None:
        if clock() > deadline and not (total and done >= total):  # the last call of a finished loop is no timeout
            raise StageTimeout(
                f"{what}: outlived its {timeout_s:.0f} s timeout ({done >> 20} of {total >> 20} MiB done); "
                "raise timeout_s, or run it again to resume"
            )
        if progress is not None:
            progress(done, total)

    return report
