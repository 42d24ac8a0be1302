"""The compositing-engine lifecycle on the local backend: the agent really runs, and nothing is ever left behind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imageport.disks.convert import hash_disk
from imageport.disks.local_files import LOCAL
from imageport.engine.backend import Resource
from imageport.engine.job import AgentMode, ExportDestination
from imageport.engine.lifecycle import Outcome, compositing_engine
from imageport.engine.local import CE_DIR, LocalBackend, LocalSource, agent_pids
from imageport.engine.reaper import reap
from imageport.errors import EngineCleanupFailed, EngineError, EngineTimeout, GuestRefused
from imageport.models import PrepareOptions, ShareDiskFormat, TargetPlatform
from tests.infra.windows_image import registry_dump


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(root: Path) -> list[str]:
    ce_root = root / CE_DIR
    return sorted(p.name for p in ce_root.iterdir()) if ce_root.exists() else []


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "platform"


def prepare_job(ce, **options):  # type: ignore[no-untyped-def]
    return ce.job(target_platform=TargetPlatform.AZURE, prepare=PrepareOptions.model_validate(options))


def test_prepare_through_the_agent_keeps_only_the_verified_output(windows_disks, root: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = windows_disks["gpt"]
    before = sha256(source)
    output = root / "gold-prepared.img"
    outcome = Outcome()
    with compositing_engine(
        LocalBackend(root), LocalSource(LOCAL, str(source), str(output)), AgentMode.PREPARE, "run-ok", outcome=outcome
    ) as ce:
        result = ce.run(prepare_job(ce, enable_rdp=True))
    assert result.ok and result.result["verified"] is True
    assert "job finished" not in result.log and "prepare job for run run-ok" in result.log
    assert outcome.output == str(output) and output.is_file()
    assert {r.kind for r in outcome.created} == {"local-ce", "local-output"}
    assert sha256(source) == before
    assert leftovers(root) == []
    # An independent reader (regipy on the hives) sees what the agent changed in the output.
    hives = registry_dump(output, tmp_path)
    ts = hives["SYSTEM\\ControlSet001\\Control\\Terminal Server"]
    assert ts["fDenyTSConnections"] == 0


def test_diagnostics_and_export_jobs(windows_disks, root: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = windows_disks["mbr"]
    with compositing_engine(LocalBackend(root), LocalSource(LOCAL, str(source)), AgentMode.DIAGNOSTICS, "run-d") as ce:
        report = ce.run(ce.job()).result
    assert report["facts"]["product"] and report["facts"]["partition_style"] == "mbr" and report["problems"] == []
    exported = tmp_path / "out.vhdx"
    destination = ExportDestination(path=str(exported), disk_format=ShareDiskFormat.VHDX)
    with compositing_engine(LocalBackend(root), LocalSource(LOCAL, str(source)), AgentMode.EXPORT, "run-e") as ce:
        result = ce.run(ce.job(export=destination)).result
    assert result["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert hash_disk(exported, sha256=True).sha256 == result["sha256"]
    assert leftovers(root) == []


def test_a_refused_image_fails_clearly_and_leaves_nothing(windows_disks, root: Path) -> None:  # type: ignore[no-untyped-def]
    source = windows_disks["hibernated"]
    before = sha256(source)
    output = root / "out.img"
    with (
        pytest.raises(GuestRefused, match="hibernat"),
        compositing_engine(
            LocalBackend(root), LocalSource(LOCAL, str(source), str(output)), AgentMode.PREPARE, "r"
        ) as ce,
    ):
        ce.run(prepare_job(ce))
    assert not output.exists() and leftovers(root) == [] and sha256(source) == before


def test_exception_inside_the_block_tears_down(windows_disks, root: Path) -> None:  # type: ignore[no-untyped-def]
    output = root / "out.img"
    with (
        pytest.raises(RuntimeError, match="boom"),
        compositing_engine(
            LocalBackend(root), LocalSource(LOCAL, str(windows_disks["mbr"]), str(output)), AgentMode.PREPARE, "r"
        ),
    ):
        assert len(leftovers(root)) == 1
        raise RuntimeError("boom")
    assert not output.exists() and leftovers(root) == []


def test_agent_crash_and_hang_past_timeout(windows_disks, root: Path) -> None:  # type: ignore[no-untyped-def]
    source = LocalSource(LOCAL, str(windows_disks["mbr"]))
    with (
        pytest.raises(EngineError, match="without a result"),
        compositing_engine(LocalBackend(root), source, AgentMode.DIAGNOSTICS, "r") as ce,
    ):
        ce.run(ce.job(simulate="crash"))
    assert leftovers(root) == []
    with (
        pytest.raises(EngineTimeout, match="outlived its 2 s timeout"),
        compositing_engine(LocalBackend(root), source, AgentMode.DIAGNOSTICS, "r", timeout_s=2) as ce,
    ):
        ce.run(ce.job(simulate="hang"))
    assert leftovers(root) == []
    assert not agent_pids(root)


def test_failure_during_creation_removes_what_was_made(root: Path, tmp_path: Path) -> None:
    not_a_disk = tmp_path / "truncated.vhdx"
    not_a_disk.write_bytes(b"vhdxfile" + b"\0" * 1000)  # a VHDX signature, then nothing: the copy fails
    with (
        pytest.raises(Exception, match=r"truncated\.vhdx"),
        compositing_engine(LocalBackend(root), LocalSource(LOCAL, str(not_a_disk)), AgentMode.DIAGNOSTICS, "r"),
    ):
        pass
    assert leftovers(root) == []


class FlakyDeletes(LocalBackend):
    """Deletion fails ``failures`` times per resource before it works (or always, with -1)."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root)
        self.failures, self.attempts = failures, 0

    def delete(self, resource: Resource) -> None:
        self.attempts += 1
        if self.failures < 0 or self.attempts <= self.failures:
            raise EngineError(f"simulated: cannot delete {resource.id}")
        super().delete(resource)


def test_failed_deletions_are_retried_then_reported_never_swallowed(windows_disks, root: Path) -> None:  # type: ignore[no-untyped-def]
    source = LocalSource(LOCAL, str(windows_disks["mbr"]))
    no_wait = {"sleep": lambda s: None}
    flaky = FlakyDeletes(root, failures=2)
    with compositing_engine(flaky, source, AgentMode.DIAGNOSTICS, "r", **no_wait):
        pass
    assert flaky.attempts == 3 and leftovers(root) == []
    broken = FlakyDeletes(root, failures=-1)
    with (
        pytest.raises(EngineCleanupFailed, match=r"could not remove 1 resource.*imageport reap") as failed,
        compositing_engine(broken, source, AgentMode.DIAGNOSTICS, "run-left", **no_wait),
    ):
        pass
    assert broken.attempts == 4 and [r.kind for r in failed.value.left] == ["local-ce"]
    # What was left is tagged: the reaper (with a working backend) removes it once the run is over.
    report = reap([LocalBackend(root)], is_live=lambda run: False, run_id="run-left")
    assert len(report.deleted) == 1 and leftovers(root) == []


def test_keep_on_failure_keeps_it_loudly_and_the_reaper_removes_it_later(windows_disks, root: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    source = LocalSource(LOCAL, str(windows_disks["mbr"]))
    with (
        pytest.raises(EngineError),
        compositing_engine(LocalBackend(root), source, AgentMode.DIAGNOSTICS, "run-debug", keep_on_failure=True) as ce,
    ):
        ce.run(ce.job(simulate="crash"))
    assert "KEEPING the local compositing engine of run run-debug" in caplog.text
    (kept,) = leftovers(root)
    assert (root / CE_DIR / kept / "agent.log").is_file()
    # Not expired yet, and the run is over: the scheduled reaper leaves it until its expiry...
    report = reap([LocalBackend(root)], is_live=lambda run: False)
    assert report.deleted == [] and len(report.kept_unexpired) == 1
    # ...and takes it once expired.
    later = reap([LocalBackend(root)], is_live=lambda run: False, now=_far_future())
    assert len(later.deleted) == 1 and leftovers(root) == []


def _far_future():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(days=30)


def test_reaper_spares_live_runs_and_untagged_things(windows_disks, root: Path) -> None:  # type: ignore[no-untyped-def]
    source = LocalSource(LOCAL, str(windows_disks["mbr"]))
    with pytest.raises(EngineError), compositing_engine(
        LocalBackend(root), source, AgentMode.DIAGNOSTICS, "run-live", keep_on_failure=True
    ) as ce:  # fmt: skip
        ce.run(ce.job(simulate="crash"))
    stranger = root / CE_DIR / "someone-elses-dir"
    stranger.mkdir()
    (stranger / "ce.json").write_text(json.dumps({"tags": {"owner": "not imageport"}}))
    report = reap([LocalBackend(root)], is_live=lambda run: run == "run-live", now=_far_future())
    assert report.deleted == [] and len(report.kept_live) == 1
    assert len(leftovers(root)) == 2
    report = reap([LocalBackend(root)], is_live=lambda run: False, now=_far_future())
    assert len(report.deleted) == 1 and leftovers(root) == ["someone-elses-dir"]


ORCHESTRATOR = """
import sys
from imageport.disks.local_files import LOCAL
from imageport.engine.job import AgentMode
from imageport.engine.lifecycle import compositing_engine
from imageport.engine.local import LocalBackend
from imageport.engine.local import LocalSource
root, disk = sys.argv[1], sys.argv[2]
with compositing_engine(LocalBackend(root), LocalSource(LOCAL, disk, root + "/out.img"), AgentMode.PREPARE,
                        "run-killed", ttl_s=1) as ce:
    print("ready", flush=True)
    ce.run(ce.job(simulate="hang", target_platform="azure", prepare={}))
"""


def test_sigkill_of_the_orchestrator_then_reap_leaves_nothing(windows_disks, root: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    source = windows_disks["mbr"]
    before = sha256(source)
    orchestrator = subprocess.Popen(
        [sys.executable, "-c", ORCHESTRATOR, str(root), str(source)], stdout=subprocess.PIPE, text=True
    )
    assert orchestrator.stdout is not None and orchestrator.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while not agent_pids(root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert agent_pids(root), "the agent never started"
    os.kill(orchestrator.pid, signal.SIGKILL)
    orchestrator.wait()
    assert len(leftovers(root)) == 1  # the orchestrator could not clean up: that is the reaper's job
    time.sleep(1.5)  # past the (1 s) expiry
    done = run_cli("connector", "create", "local", "lab", f"root={root}")
    assert done.returncode == 0, done.stderr
    dry = run_cli("reap", "--dry-run")
    assert dry.returncode == 0 and "would delete local local-ce" in dry.stdout and len(leftovers(root)) == 1
    reaped = run_cli("reap")
    assert reaped.returncode == 0, reaped.stderr
    assert "deleted local local-ce" in reaped.stdout
    assert leftovers(root) == [] and not agent_pids(root)
    assert not (root / "out.img").exists() and sha256(source) == before


def test_a_platform_the_reaper_cannot_list_does_not_keep_the_others_leftovers(tmp_path: Path) -> None:
    """A XenServer that refuses the login (say) is reported; the local CE's dead leftover is still removed."""
    from imageport.engine.tags import CeTags
    from imageport.errors import PlatformUnreachable

    class Unreachable(LocalBackend):
        platform = "xenserver"

        def list_resources(self) -> list[Resource]:
            raise PlatformUnreachable("login to xenserver://pool as root: XenServer refused the user name or password")

    leftover = tmp_path / CE_DIR / "ce-prepare-dead"
    leftover.mkdir(parents=True)
    tags = CeTags.for_run("run-gone", "prepare", -60)  # expired a minute ago
    (leftover / "ce.json").write_text(json.dumps({"tags": tags.as_dict(), "pid": None}))
    report = reap([Unreachable(tmp_path), LocalBackend(tmp_path)], lambda run: False)
    assert report.failed == ["xenserver: could not list its resources: login to xenserver://pool as root: "
                             "XenServer refused the user name or password"]  # fmt: skip
    assert [line.split(" (run")[0] for line in report.deleted] == [f"local local-ce {leftover}"]
    assert not leftover.exists()
