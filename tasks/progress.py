"""Progress of the stages as a Prefect progress artifact plus log lines: bytes (rate, ETA) for the data
stages, phases (with elapsed time) for prepare. A data stage's timeout is enforced here too, in the loop
that calls the callback (``imageport.transfer.deadline``), not by Prefect's task timeout."""

from __future__ import annotations

import time
from collections.abc import Callable

from prefect.artifacts import update_progress_artifact
from prefect.logging import get_run_logger

from imageport.transfer.deadline import with_deadline
from tasks.artifacts import create_progress_artifact


def prefect_progress(
    description: str, every_s: float = 2.0, timeout_s: float | None = None
) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback for the core that reports to the Prefect UI; with ``timeout_s``
    it raises ``StageTimeout`` from the transfer loop once the stage has run that long."""
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

    return report if timeout_s is None else with_deadline(report, timeout_s, description)


def phase_progress(description: str, phases: tuple[str, ...]) -> Callable[[str], None]:
    """A ``phase(name)`` callback for a stage made of phases (prepare: copy into a CE, run the agent, keep the
    output): each phase moves the progress artifact on by its share and logs its start with the time elapsed."""
    artifact_id = create_progress_artifact(progress=0.0, description=description)
    logger = get_run_logger()
    started = time.monotonic()

    def phase(name: str) -> None:
        step = phases.index(name) if name in phases else len(phases)
        update_progress_artifact(artifact_id=artifact_id, progress=100.0 * step / len(phases))
        label = "done" if step == len(phases) else f"phase {step + 1}/{len(phases)}: {name}"
        logger.info("%s: %s (%.0f s elapsed)", description, label, time.monotonic() - started)

    return phase
