"""Progress of long data stages as a Prefect progress artifact plus rate/ETA log lines."""

from __future__ import annotations

import time
from collections.abc import Callable

from prefect.artifacts import update_progress_artifact
from prefect.logging import get_run_logger

from tasks.artifacts import create_progress_artifact


def prefect_progress(description: str, every_s: float = 2.0) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback for the core that reports to the Prefect UI."""
    artifact_id = create_progress_artifact(progress=0.0, description=description)
    logger = get_run_logger()
    started = time.monotonic()
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        finished = total > 0 and done >= total
        if now - last[0] < every_s and not finished:
            return
        last[0] = now
        percent = 100.0 * done / total if total else 0.0
        update_progress_artifact(artifact_id=artifact_id, progress=percent)
        rate = done / max(now - started, 1e-6)
        eta = (total - done) / rate if rate and total else 0.0
        logger.info("%s: %.1f%%, %.0f MiB/s, ETA %.0f s", description, percent, rate / 2**20, eta)

    return report
