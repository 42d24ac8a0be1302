"""What a compositing-engine backend provides, and the ledger of what it created.

A backend provisions a CE (a helper VM, or a process and a work directory
locally) with a copy of the disk attached, runs the agent on it, deletes its
resources one by one, and lists every resource it ever tagged (for the
reaper). It records each resource in the ``Ledger`` *before* the call that
creates it, so a create that fails half-way (Azure can leave a failed VM
behind) is still cleaned up; deleting something that does not exist is a
no-op in every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from imageport.disks.io import ByteSource
from imageport.engine.job import AgentDisk, AgentJob, AgentResult
from imageport.engine.tags import CeTags
from imageport.platforms.azure.disks import HalfUpload


@dataclass(frozen=True)
class Resource:
    """Something a CE run created. ``order`` sorts deletions: lower goes first (detach before VM before disk)."""

    kind: str
    id: str
    tags: CeTags
    order: int = 50
    keep: bool = False  # the run's output: finalized (kept) on success, deleted on failure
    final: str | None = None  # where a kept output goes when finalized (path, datastore path, Azure snapshot)
    overwrite: bool = False  # whether finalizing may replace what is at ``final``
    parent: str | None = None  # the resource this one belongs to (the VM a disk is attached to)

    def describe(self) -> str:
        return f"{self.kind} {self.id}"


@dataclass
class Ledger:
    """Resources in creation order; unwound in reverse."""

    tags: CeTags
    resources: list[Resource] = field(default_factory=list)

    def creating(
        self,
        kind: str,
        id: str,
        *,
        order: int = 50,
        keep: bool = False,
        final: str | None = None,
        overwrite: bool = False,
        parent: str | None = None,
    ) -> Resource:
        resource = Resource(kind, id, self.tags, order, keep, final, overwrite, parent)
        self.resources.append(resource)
        return resource


@dataclass
class Provisioned:
    """A ready CE: its handle, where the agent finds the disk, and the output copy (if it is kept)."""

    engine: Any
    disk: AgentDisk
    output: Resource | None = None


class CeBackend(Protocol):
    platform: str

    def provision(self, source: Any, ledger: Ledger, *, keep_copy: bool, boot_diagnostics: bool = False) -> Provisioned:
        """Create the CE and attach a copy of ``source``; record each resource in ``ledger`` before creating it.

        ``boot_diagnostics`` (Citrix's DebugSettings): the CE's console is captured where its platform keeps one,
        for ``boot_log``; a backend whose CE does not boot refuses it before creating anything."""
        ...

    def boot_log(self, engine: Any) -> str:
        """The CE's console output so far (boot diagnostics; '' when none was captured)."""
        ...

    def run_agent(self, engine: Any, job: AgentJob, timeout_s: float) -> AgentResult:
        """Run the agent; raise ``EngineTimeout`` (after stopping it) when it outlives ``timeout_s``."""
        ...

    def delete(self, resource: Resource) -> None:
        """Delete one resource; a missing one is not an error."""
        ...

    def finalize(self, resource: Resource) -> str:
        """Keep the output copy for good (drop its expiry / move it into place); returns its final id."""
        ...

    def list_resources(self) -> list[Resource]:
        """Every resource this backend's platform holds that carries imageport's tags."""
        ...


@runtime_checkable
class UploadGrants(Protocol):
    """A backend whose platform hands out write grants for uploads (Azure): the reaper ends dead runs' grants."""

    platform: str

    def half_uploaded(self) -> list[HalfUpload]:
        """Disks left in an upload state, with the run that left them."""
        ...

    def revoke_upload(self, name: str) -> str:
        """End the write grant on disk ``name``; returns the state it is left in."""
        ...


@runtime_checkable
class CarriesFiles(Protocol):
    """A backend that can put a file where its CE's agent reads it (installers a prepare stages)."""

    platform: str

    def deliver(self, engine: Any, name: str, source: ByteSource) -> str:
        """Copy ``source`` to the CE as ``name`` (ledgered like any resource); returns where the agent
        fetches it (``JobInstaller.fetch``: a path in the CE, or a read-only URL)."""
        ...

    def reaches(self, url: str) -> bool:
        """Whether the CE can fetch ``url`` (a blob's, with a read SAS) by itself, so nothing is copied."""
        ...
