"""``compositing_engine``: create a CE with a copy of the disk, run the agent, and always tear it down.

Teardown runs on success, failure and exception alike, in reverse creation
order, each deletion retried; a deletion that still fails is reported as an
``EngineCleanupFailed`` naming what is left -- never swallowed. The output
copy (a prepared disk) is finalized only when the job succeeded; on failure
it is deleted with the rest, so a half-prepared disk never looks usable.
``keep_on_failure`` (debugging) keeps everything after a failure and says so
loudly, resources and expiry listed, because it costs money until reaped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from imageport.engine.backend import CeBackend, Ledger, Provisioned, Resource
from imageport.engine.job import AgentJob, AgentMode, AgentResult
from imageport.engine.tags import CeTags
from imageport.errors import EngineCleanupFailed
from imageport.retry import RetryPolicy

log = logging.getLogger("imageport.engine")

# Citrix's defaults: 3600 s for prepare, 7200 s for export (diagnostics is a read: prepare's budget).
DEFAULT_TIMEOUTS = {AgentMode.PREPARE: 3600, AgentMode.EXPORT: 7200, AgentMode.DIAGNOSTICS: 3600}
# A CE outlives its job timeout by this much before the reaper may take it (creation, copy, teardown).
EXPIRY_MARGIN_S = 3600
# A resource deletion: 1, 3, 9 s apart, for at most a minute.
DELETE_RETRY = RetryPolicy(attempts=4, first_delay=1.0, backoff=3.0, max_delay=10.0, deadline=60.0)


@dataclass
class CompositingEngine:
    """The live CE inside the ``with`` block."""

    backend: CeBackend
    provisioned: Provisioned
    ledger: Ledger
    mode: AgentMode
    timeout_s: float

    @property
    def run_id(self) -> str:
        return self.ledger.tags.run_id

    def job(self, **fields: Any) -> AgentJob:
        return AgentJob(mode=self.mode, run_id=self.run_id, disk=self.provisioned.disk, **fields)

    def run(self, job: AgentJob) -> AgentResult:
        """Run the agent; a failed job raises (mapped from the agent's exit code)."""
        where = f"{self.backend.platform} CE for run {self.run_id}"
        started = time.monotonic()
        result = self.backend.run_agent(self.provisioned.engine, job, self.timeout_s)
        log.info("%s: agent %s job finished in %.1f s (exit %d)", where, job.mode.value, time.monotonic() - started,
                 result.exit_code)  # fmt: skip
        result.raise_for_failure(where)
        return result


@dataclass
class Outcome:
    """What a finished CE run leaves: the final id of the kept output (if any) and everything it created."""

    output: str | None = None
    created: list[Resource] = field(default_factory=list)
    boot_log: str | None = None  # the CE's console (boot diagnostics), read before teardown, success or not


@contextlib.contextmanager
def compositing_engine(
    backend: CeBackend,
    source: Any,
    mode: AgentMode,
    run_id: str,
    *,
    stage: str | None = None,
    timeout_s: float | None = None,
    ttl_s: float | None = None,
    keep_on_failure: bool = False,
    boot_diagnostics: bool = False,
    tags: dict[str, str] | None = None,
    outcome: Outcome | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[CompositingEngine]:
    """A CE on ``backend`` with a copy of ``source`` attached, for the duration of the block.

    ``ttl_s`` (default: the job timeout plus an hour) is when the reaper may take what is left.
    In ``prepare`` mode the copy is the output: kept (finalized) if the block succeeds,
    deleted otherwise; ``outcome.output`` then names it. In other modes it is scratch.
    ``boot_diagnostics``: the CE's console is captured and read into ``outcome.boot_log`` before
    teardown -- after a failure too, when it matters most (and then logged).
    ``tags``: the user's (the stage's ``tags`` option), put beside imageport's marks on every resource.
    """
    timeout = float(timeout_s or DEFAULT_TIMEOUTS[mode])
    ttl = ttl_s if ttl_s is not None else timeout + EXPIRY_MARGIN_S
    marks = CeTags.for_run(run_id, stage or mode.value, ttl, user=tags)
    ledger = Ledger(marks)
    outcome = outcome if outcome is not None else Outcome()
    succeeded = False
    provisioned: Provisioned | None = None
    try:
        provisioned = backend.provision(source, ledger, keep_copy=mode is AgentMode.PREPARE,
                                        boot_diagnostics=boot_diagnostics)  # fmt: skip
        engine = CompositingEngine(backend, provisioned, ledger, mode, timeout)
        yield engine
        succeeded = True
    finally:
        outcome.created = list(ledger.resources)
        if boot_diagnostics and provisioned is not None:
            outcome.boot_log = read_boot_log(backend, provisioned.engine, failed=not succeeded)
        if not succeeded and keep_on_failure:
            log.warning(
                "KEEPING the %s compositing engine of run %s after a failure (keep_on_failure): %s. "
                "They cost money until deleted; `imageport reap` removes them after %s.",
                backend.platform, run_id, ", ".join(r.describe() for r in ledger.resources) or "nothing created",
                marks.expires.isoformat() if marks.expires else "never",
            )  # fmt: skip
        else:
            outcome.output = teardown(backend, ledger.resources, succeeded=succeeded, sleep=sleep)


def read_boot_log(backend: CeBackend, engine: Any, *, failed: bool) -> str:
    """The CE's console for the result; after a failure also logged, since no result will carry it."""
    try:
        text = backend.boot_log(engine)
    except Exception as exc:  # the console is a debugging aid: its loss must not hide the job's own outcome
        text = f"(the {backend.platform} CE's boot diagnostics could not be read: {exc})"
    if failed:
        log.warning("boot diagnostics of the failed %s CE (last lines):\n%s", backend.platform,
                    "\n".join(text.strip().splitlines()[-40:]) or "(empty)")  # fmt: skip
    return text


def teardown(
    backend: CeBackend, resources: list[Resource], *, succeeded: bool, sleep: Callable[[float], None] = time.sleep
) -> str | None:
    """Finalize the kept output (on success) and delete everything else, newest first.

    Every resource is attempted even if an earlier one fails; what is left is raised at the end.
    """
    output: str | None = None
    left: list[tuple[Resource, BaseException]] = []
    ordered = sorted(reversed(resources), key=lambda r: r.order)  # stable: reverse creation within an order
    for resource in ordered:
        if resource.keep and succeeded:
            try:
                output = backend.finalize(resource)
            except Exception as exc:  # reported below with the rest
                left.append((resource, exc))
            continue
        error = delete_with_retries(backend, resource, sleep)
        if error is not None:
            left.append((resource, error))
    if left:
        details = "; ".join(f"{r.describe()}: {exc}" for r, exc in left)
        raise EngineCleanupFailed(
            f"{backend.platform} CE of run {resources[0].tags.run_id}: could not remove {len(left)} resource(s) "
            f"after retries ({details}); they are tagged and `imageport reap` will remove them",
            [r for r, _ in left],
        )
    return output


def delete_with_retries(
    backend: CeBackend, resource: Resource, sleep: Callable[[float], None] = time.sleep
) -> BaseException | None:
    """Delete ``resource``, retrying (any error: a deletion is worth another try); the last error
    if it never went away."""

    def failed(attempt: int, exc: BaseException) -> None:
        log.warning("deleting %s failed (attempt %d): %s", resource.describe(), attempt, exc)

    try:
        DELETE_RETRY.run(lambda: backend.delete(resource), retry_on=lambda exc: True, on_failure=failed, sleep=sleep)
    except Exception as exc:  # retried, then returned to the caller to report
        return exc
    return None
