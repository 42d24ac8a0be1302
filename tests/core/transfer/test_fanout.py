"""One read, many writes (``transfer.fanout``): the source read once, every sink's content hash equal to the
source's, a failing target alone failing, a slow sink back-pressuring within the window's bound."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from imageport.disks.convert import hash_disk
from imageport.disks.detect import open_disk
from imageport.disks.local_files import LOCAL
from imageport.errors import StorageError
from imageport.models import DiskFormat
from imageport.transfer.copy import copy_image
from imageport.transfer.fanout import StreamCopier, fan_out
from tests.core.disks.images import MiB, make_raw


class CountingReads:
    """Wraps a reader's ``readinto``: every byte read from the source is counted, by offset."""

    def __init__(self, reader) -> None:  # type: ignore[no-untyped-def]
        self.reads: dict[int, int] = {}
        self.lock = threading.Lock()
        original = reader.readinto

        def readinto(offset, buffer):  # type: ignore[no-untyped-def]
            with self.lock:
                self.reads[offset] = self.reads.get(offset, 0) + 1
            return original(offset, buffer)

        reader.readinto = readinto


def local_sink(path: Path, fmt: DiskFormat):  # type: ignore[no-untyped-def]
    return lambda opened: copy_image(opened[1], opened[0], str(path), LOCAL, fmt)


def test_two_targets_stream_from_one_read_and_each_holds_the_source(tmp_path: Path) -> None:
    source = make_raw(tmp_path / "src.raw", 48 * MiB, runs=9, seed=21)
    expected = hash_disk(source).content_hash
    sinks = [local_sink(tmp_path / "a.vhd", DiskFormat.VHD), local_sink(tmp_path / "b.raw", DiskFormat.RAW)]
    copier = StreamCopier(sinks, slots=3)
    counted: list[CountingReads] = []

    def open_counted(path, fmt, fs):  # type: ignore[no-untyped-def]
        reader = open_disk(path, fmt, fs)
        counted.append(CountingReads(reader))
        return reader

    import imageport.transfer.fanout as fanout

    original = fanout.open_disk
    fanout.open_disk = open_counted
    try:
        staged = copier(str(source), LOCAL, str(tmp_path / "staging.vhdx"), LOCAL, DiskFormat.VHDX)
    finally:
        fanout.open_disk = original
    assert staged.content_hash == expected
    assert [o.result().content_hash for o in copier.outcomes] == [expected, expected]
    for written, fmt in (("staging.vhdx", None), ("a.vhd", None), ("b.raw", DiskFormat.RAW)):
        assert hash_disk(tmp_path / written, source_format=fmt).content_hash == expected, written
    (reads,) = counted
    assert reads.reads and set(reads.reads.values()) == {1}  # every chunk of the source read exactly once
    stats = copier.stats
    assert stats is not None and stats.chunks_read == stats.chunks_planned == len(reads.reads)
    assert stats.reads_behind == 0 and 1 <= stats.peak_in_flight <= 3


def test_a_failing_target_fails_alone_and_the_others_and_staging_complete(tmp_path: Path) -> None:
    source = make_raw(tmp_path / "src.raw", 40 * MiB, runs=8, seed=5)
    expected = hash_disk(source).content_hash
    seen = []

    def broken(opened):  # type: ignore[no-untyped-def]
        with open_disk(opened[1], None, opened[0]) as reader:
            for ext in reader.extents():
                seen.append(reader.read(ext.offset, min(ext.length, MiB)))
                if len(seen) == 3:
                    raise StorageError("injected: the target's store went away")
        raise AssertionError("not reached")

    with open_disk(str(source)) as reader:
        done = fan_out(reader, local_sink(tmp_path / "staging.vhdx", DiskFormat.VHDX),
                       [broken, local_sink(tmp_path / "ok.vhd", DiskFormat.VHD)], slots=2)  # fmt: skip
    assert done.primary.content_hash == expected
    with pytest.raises(StorageError, match="injected"):
        done.targets[0].result()
    assert done.targets[1].result().content_hash == expected
    assert hash_disk(tmp_path / "ok.vhd").content_hash == expected
    assert done.stats.reads_behind == 0 and done.stats.peak_in_flight <= 2


def test_a_slow_sink_back_pressures_and_the_window_bound_holds(tmp_path: Path) -> None:
    """The slow sink reads one piece, then waits until the producer has had to wait for room: it is the
    sink holding the window, and the producer never holds more than ``slots`` chunks."""
    source = make_raw(tmp_path / "src.raw", 64 * MiB, runs=12, seed=8, max_run=8 * MiB)
    expected = hash_disk(source).content_hash
    window_of: list = []

    def slow(opened):  # type: ignore[no-untyped-def]
        with open_disk(opened[1], None, opened[0]) as reader:
            window = reader.window
            window_of.append(window)
            first = next(iter(reader.extents()))
            reader.read(first.offset, 4096)
            for _ in range(2000):  # until the producer is stopped by this sink (no timing: a bounded poll)
                if window.stats.waits_for_room:
                    break
                threading.Event().wait(0.01)
        return copy_image(opened[1], opened[0], str(tmp_path / "slow.vhd"), LOCAL, DiskFormat.VHD)

    with open_disk(str(source)) as reader:
        done = fan_out(reader, local_sink(tmp_path / "staging.vhdx", DiskFormat.VHDX), [slow], slots=2)
    assert done.stats.waits_for_room >= 1  # the producer waited for the slow sink
    assert done.stats.peak_in_flight == 2 <= done.stats.slots
    assert done.targets[0].result().content_hash == done.primary.content_hash == expected
    assert done.stats.chunks_read == done.stats.chunks_planned and done.stats.reads_behind == 0
