"""One read, many writes in a port: the export streams its source into the targets' uploads as it copies.

The Prefect shape (docs/architecture.md, "Workflows"): the export task runs the fan-out
(``imageport.transfer.fanout``) -- the staging copy plus one sink per streaming target -- and each
target's ``upload_image`` task, run afterwards in its ``port_target`` as before, completes from its
sink's outcome (``StreamedUploads.outcome``): its own task run, its own result and cache record (keyed
by the staging file as it now is, so a re-run reuses it as it would a plain upload), or its own
failure. A target whose kind's upload does not stream (``DiskAdapter.streams_upload``), an export
Prefect reuses from its cache, or one that read its source through NFC leaves no outcome: that
target uploads from the staging file, as before.

The handoff is in memory: the export and upload tasks of one port run in the flow run's process.
"""

from __future__ import annotations

from imageport.adapters.registry import adapter_for
from imageport.models import UploadSpec
from imageport.results import StageResult
from imageport.transfer.fanout import SinkOutcome, StreamCopier
from imageport.transfer.window import WindowStats
from tasks.upload import write_upload


class StreamedUploads:
    """The uploads one port's export streams into, by target index, and what each sink ended with.

    A plain object, not a model: Prefect hands it to the tasks as it is (no copy, no serialization)."""

    def __init__(self, uploads: dict[int, UploadSpec], run_id: str) -> None:
        self.uploads = {i: u for i, u in uploads.items() if adapter_for(u.target).streams_upload}
        self.run_id = run_id  # the flow run the targets' disks are tagged with (sinks run off the task thread)
        self.copier: StreamCopier | None = None

    def __bool__(self) -> bool:
        return bool(self.uploads)

    def start(self) -> StreamCopier:
        """The export's copier: the staging copy plus one sink per upload (its progress is the export's)."""
        sinks = [lambda opened, spec=spec: _streamed(write_upload(spec, opened, None, self.run_id))
                 for spec in self.uploads.values()]  # fmt: skip
        self.copier = StreamCopier(sinks)
        return self.copier

    def outcome(self, index: int) -> SinkOutcome | None:
        """Target ``index``'s sink outcome, or None when the export did not stream into it."""
        if self.copier is None or not self.copier.outcomes or index not in self.uploads:
            return None
        return self.copier.outcomes[list(self.uploads).index(index)]

    @property
    def stats(self) -> WindowStats | None:
        return self.copier.stats if self.copier is not None else None


def _streamed(result: StageResult) -> StageResult:
    return result.model_copy(update={"streamed": True})
