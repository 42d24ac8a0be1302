"""The reaper: delete what imageport tagged, whose time is up and whose run is over.

Called by ``imageport reap``, the scheduled ``reap`` flow and the flow
cancellation/crash hooks (which name their own run, so its resources go at
once, expiry or not). It never touches an untagged resource, and never one
whose run is still live -- ``is_live`` asks Prefect.

Upload grants: a killed upload leaves its managed disk in ActiveUpload with a
write grant valid for 24 hours. The reaper lists every disk left in an upload
state (disk, state, the run on its ``imageport-run`` tag) and revokes the
grants of runs that are over: a CLI run (``platforms.runs``) is over when its
process on this host is gone (one on another host cannot be judged and is
kept unless named with ``run_id``), a Prefect run when Prefect says so. The
disk itself is kept: the next upload resumes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from imageport.engine.backend import CeBackend, UploadGrants
from imageport.engine.lifecycle import delete_with_retries
from imageport.errors import ImageportError
from imageport.platforms.runs import PREFIX as CLI_RUN_PREFIX
from imageport.platforms.runs import process_run_is_live

log = logging.getLogger("imageport.reaper")


@dataclass
class ReapReport:
    deleted: list[str] = field(default_factory=list)
    would_delete: list[str] = field(default_factory=list)
    kept_live: list[str] = field(default_factory=list)
    kept_unexpired: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # disks left in an upload state: {"disk", "state", "run", "action"}
    half_uploaded: list[dict[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"deleted {r}" for r in self.deleted] + [f"would delete {r}" for r in self.would_delete]
        out += [f"kept (run still live) {r}" for r in self.kept_live]
        out += [f"kept (not expired) {r}" for r in self.kept_unexpired]
        out += [f"FAILED to delete {r}" for r in self.failed]
        out += [
            f"half-uploaded disk {h['disk']} ({h['state']}, run {h['run'] or 'untagged'}): {h['action']}"
            for h in self.half_uploaded
        ]
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
        try:
            resources = sorted(backend.list_resources(), key=lambda r: r.order)
        except ImageportError as exc:  # one platform out of reach must not keep the others' leftovers alive
            report.failed.append(f"{backend.platform}: could not list its resources: {exc}")
            continue
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
        if isinstance(backend, UploadGrants):
            _end_dead_grants(backend, report, is_live, dry_run, run_id)
    return report


def _end_dead_grants(
    backend: UploadGrants, report: ReapReport, is_live: Callable[[str], bool], dry_run: bool, run_id: str | None
) -> None:
    for half in backend.half_uploaded():
        if run_id is not None and half.run_id != run_id:
            continue
        entry = {"disk": f"{half.resource_group}/{half.name}", "state": half.state, "run": half.run_id}
        report.half_uploaded.append(entry)
        if half.state != "ActiveUpload":
            entry["action"] = "no write grant; run the upload again to finish it, or delete the disk"
            continue
        if not half.run_id:
            entry["action"] = "not tagged with a run by imageport: left alone"
            continue
        if run_id is None:
            live = process_run_is_live(half.run_id)
            if live is None and half.run_id.startswith(CLI_RUN_PREFIX):
                entry["action"] = "a run on another host, which cannot be judged from here: kept (name it with --run)"
                continue
            if live or (live is None and is_live(half.run_id)):
                entry["action"] = "run still live: write grant kept"
                continue
        if dry_run:
            entry["action"] = "would revoke its write grant"
            continue
        try:
            state = backend.revoke_upload(half.name)
        except ImageportError as exc:
            entry["action"] = f"FAILED to revoke its write grant: {exc}"
            report.failed.append(f"{backend.platform} disk {entry['disk']}: revoke failed: {exc}")
            continue
        entry["action"] = f"write grant revoked (now {state})"
        log.info("revoked the write grant of %s left by run %s", entry["disk"], half.run_id)
