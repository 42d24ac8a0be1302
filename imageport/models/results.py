"""Result models of stages and ports."""

from __future__ import annotations

from datetime import datetime

from pydantic import (
    Field,
)

from imageport.models.vocabulary import DiskFormat, Stage, Workflow, _Model

# --- results ---------------------------------------------------------------------------


class CreatedResource(_Model):
    """Something a stage created and left in place as its output (not temporaries)."""

    kind: str = Field(description="e.g. 'azure-disk', 'share-file', 'vsphere-snapshot'.")
    id: str = Field(description="Platform id or path; never carries a secret.")


class DiskFacts(_Model):
    format: DiskFormat
    virtual_size: int = Field(ge=0)
    allocated_bytes: int = Field(ge=0)
    sha256: str | None = Field(default=None, description="SHA-256 of the virtual disk's logical bytes.")
    md5: str | None = Field(default=None, description="MD5 of the virtual disk's logical bytes.")


class StageResult(_Model):
    stage: Stage
    source: str
    target: str
    started: datetime
    finished: datetime
    input: DiskFacts | None = None
    output: DiskFacts | None = None
    bytes_moved: int = Field(default=0, ge=0, description="Bytes actually written to the target.")
    reused: bool = Field(default=False, description="True when a verified earlier result was reused.")
    created: list[CreatedResource] = Field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return (self.finished - self.started).total_seconds()


class PortResult(_Model):
    workflow: Workflow
    stages: list[StageResult]
