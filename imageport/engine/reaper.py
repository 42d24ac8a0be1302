"""The reaper: delete what imageport tagged, whose time is up and whose run is over.

Called by ``imageport reap``, the scheduled ``reap`` flow and the flow
cancellation/crash hooks (which name their own run, so its resources go at
once, expiry or not). It never touches an untagged resource, and never one
whose run is still live -- ``is_live`` asks Prefect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from imageport.engine.backend import CeBackend
from imageport.engine.lifecycle import delete_with_retries

log = logging.getLogger("imageport.reaper")


@dataclass
class ReapReport:
    deleted: list[str] = field(default_factory=list)
    would_delete: list[str] = field(default_factory=list)
    kept_live: list[str] = field(default_factory=list)
    kept_unexpired: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"deleted {r}" for r in self.deleted] + [f"would delete {r}" for r in self.would_delete]
        out += [f"kept (run still live) {r}" for r in self.kept_live]
        out += [f"kept (not expired) {r}" for r in self.kept_unexpired]
        out += [f"FAILED to delete {r}" for r in self.failed]
        return out or ["nothing tagged by imageport was found"]


def reap(
    backends: Iterable[CeBackend],
    is_live: Callable[[str], bool],
    *,
    dry_run: bool = False,
    run_id: str | None = None,
    now: datetime | None = None,
) -> ReapReport:
    """Delete expired imageport resources of finished runs (or, with ``run_id``, every resource of that run)."""
    now = now or datetime.now(UTC)
    report = ReapReport()
    for backend in backends:
        resources = sorted(backend.list_resources(), key=lambda r: r.order)
        verdicts: dict[str, bool] = {}
        for resource in resources:
            label = f"{backend.platform} {resource.describe()} (run {resource.tags.run_id})"
            if resource.tags.expires is None:
                continue  # a finalized output: kept for good
            if run_id is not None:
                if resource.tags.run_id != run_id:
                    continue
            elif not resource.tags.expired(now):
                report.kept_unexpired.append(label)
                continue
            else:
                if resource.tags.run_id not in verdicts:
                    verdicts[resource.tags.run_id] = is_live(resource.tags.run_id)
                if verdicts[resource.tags.run_id]:
                    report.kept_live.append(label)
                    continue
            if dry_run:
                report.would_delete.append(label)
                continue
            error = delete_with_retries(backend, resource)
            if error is None:
                report.deleted.append(label)
                log.info("reaped %s", label)
            else:
                report.failed.append(f"{label}: {error}")
    return report
