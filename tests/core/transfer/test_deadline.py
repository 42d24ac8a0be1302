"""A stage's timeout is enforced inside the transfer loop: the copy stops at its next step with our own
error, nothing is presented as complete, and a re-run resumes. The clock is injected: no test waits."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageport.disks.convert import hash_disk
from imageport.disks.local_files import LOCAL
from imageport.errors import StageTimeout, TransferError
from imageport.models import DiskFormat
from imageport.transfer.copy import copy_image
from imageport.transfer.deadline import with_deadline
from tests.core.disks.images import MiB, make_raw


class Clock:
    """A clock that jumps ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_copy_past_its_deadline_stops_in_the_loop_and_a_rerun_completes(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "src.raw", 24 * MiB, runs=6, seed=40, max_run=4 * MiB)
    out = tmp_path / "out.vhdx"
    seen: list[tuple[int, int]] = []
    late = with_deadline(lambda done, total: seen.append((done, total)), 30, "export gold", clock=Clock(60))
    with pytest.raises(StageTimeout, match=r"export gold: outlived its 30 s timeout \(\d+ of \d+ MiB done\)"):
        copy_image(str(raw), LOCAL, str(out), LOCAL, DiskFormat.VHDX, checkpoint_seconds=0, progress=late)
    assert issubclass(StageTimeout, TransferError) and not StageTimeout.transient  # not retried by the copy policy
    assert not out.exists() and seen == []  # nothing presented as complete; the inner callback never ran
    result = copy_image(str(raw), LOCAL, str(out), LOCAL, DiskFormat.VHDX, checkpoint_seconds=0)
    assert result.content_hash == hash_disk(raw).content_hash  # the re-run completes (resuming what was durable)


def test_a_copy_within_its_deadline_reports_progress_through(tmp_path: Path) -> None:
    raw = make_raw(tmp_path / "src.raw", 8 * MiB, runs=3, seed=41)
    seen: list[tuple[int, int]] = []
    timely = with_deadline(lambda done, total: seen.append((done, total)), 30, "upload gold", clock=Clock(0))
    copy_image(str(raw), LOCAL, str(tmp_path / "out.vhdx"), LOCAL, DiskFormat.VHDX, progress=timely)
    assert seen and seen[-1][0] == seen[-1][1] > 0
    # The final call of a finished loop is never a timeout, however late.
    with_deadline(None, 1, "x", clock=Clock(60))(10, 10)
