"""One read, many writes: a source disk streamed into a primary copy and every target at once.

``fan_out`` starts one producer (``transfer.window.StreamWindow``) and one thread per sink. The
*primary* sink is the staging copy, the checkpoint every later stage (and every re-run) reads:
if it fails, the stream stops and its error is raised. A *target* sink failing ends only that
sink: its outcome carries the error and the others go on. Each sink keeps its own resume
checkpoint (the writers' own: a staged partial file, page-blob checkpoints) and its own proof;
on top, a target's content hash must equal the primary's (what the source held), else its
outcome is a ``TransferError``.

``StreamCopier`` is the form an export takes it in: a drop-in for ``transfer.copy.copy_image``
(the adapters' ``export(copy=...)``) that opens the source, fans it out to the staging copy and
the targets, and returns the staging copy's ``ConvertResult``; the targets' outcomes stay on it.
Sinks run in a copy of the caller's ``contextvars`` context, so logging and settings bound to
the caller (a Prefect task run) hold in them too.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from imageport.disks.convert import ConvertResult
from imageport.disks.detect import open_disk
from imageport.disks.formats import DiskReader
from imageport.disks.io import FileSystem
from imageport.errors import TransferError
from imageport.models import DiskFormat
from imageport.transfer.copy import copy_image
from imageport.transfer.window import STREAM_PATH, WINDOW_SLOTS, StreamWindow, WindowFileSystem, WindowStats

Opened = tuple[FileSystem, str]
StreamSink = Callable[[Opened], Any]
"""sink((file system, path)) -> its result (with ``content_hash``): a writer reading the stream as a disk."""


@dataclass
class SinkOutcome:
    """What one sink of a stream ended with: its result, or the error that ended it."""

    value: Any = None
    error: BaseException | None = None

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


@dataclass
class FanOut:
    primary: Any
    targets: list[SinkOutcome]
    stats: WindowStats


def fan_out(source: DiskReader, primary: StreamSink, targets: Sequence[StreamSink],
            slots: int = WINDOW_SLOTS) -> FanOut:  # fmt: skip
    """Stream ``source`` once into ``primary`` and every target (see the module docstring)."""
    window = StreamWindow(source, slots)
    sinks = [primary, *targets]
    outcomes = [SinkOutcome() for _ in sinks]
    for i in range(len(sinks)):
        window.attach(i)

    def run(i: int) -> None:
        try:
            outcomes[i].value = sinks[i]((WindowFileSystem(window, i), STREAM_PATH))
        except BaseException as exc:
            outcomes[i].error = exc
            if i == 0:
                window.fail(exc)  # no staging copy, no checkpoint: stop every target too
        finally:
            window.detach(i)

    produced = SinkOutcome()

    def produce() -> None:
        try:
            window.produce()
        except BaseException as exc:
            produced.error = exc

    threads = [_thread(produce, "stream-read")]
    threads += [_thread(lambda i=i: run(i), f"stream-sink-{i}") for i in range(len(sinks))]
    for thread in threads:
        thread.join()
    if produced.error is not None:
        raise produced.error  # the source failed: the reason every sink stopped
    value = outcomes[0].result()
    expected = getattr(value, "content_hash", None)
    for outcome in outcomes[1:]:
        got = getattr(outcome.value, "content_hash", None)
        if outcome.error is None and got != expected:
            outcome.error = TransferError(f"a streamed target holds content {got}, the source's is {expected}")
    return FanOut(value, outcomes[1:], window.stats)


def _thread(target: Callable[[], None], name: str) -> threading.Thread:
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), name=name, daemon=True)
    thread.start()
    return thread


@dataclass
class StreamCopier:
    """``copy_image``'s signature, fanning the source out to ``targets`` as it copies (see the module docstring).

    Used once per export: ``outcomes`` (one per target, in order) and ``stats`` are set when it ran; they
    stay empty when the export read its source another way (a vSphere delta chain through NFC)."""

    targets: Sequence[StreamSink]
    slots: int = WINDOW_SLOTS
    outcomes: list[SinkOutcome] = field(default_factory=list)
    stats: WindowStats | None = None

    def __call__(self, source: str, source_fs: FileSystem, output: str, output_fs: FileSystem, fmt: DiskFormat,
                 **options: Any) -> ConvertResult:  # fmt: skip
        def staging(opened: Opened) -> ConvertResult:
            return copy_image(opened[1], opened[0], output, output_fs, fmt, **options)

        with open_disk(source, options.get("source_format"), source_fs) as reader:
            done = fan_out(reader, staging, self.targets, self.slots)
        self.outcomes, self.stats = done.targets, done.stats
        result: ConvertResult = done.primary
        return result
