"""The platform adapter protocol: what every disk-reference kind answers, in one place per kind.

An adapter is stateless; what it needs from outside -- a saved connector, built into its core
adapter (``SmbShare``, ``AzureSession``, ``VsphereSession``, ``LocalDirectory``) -- comes through
``Connectors``, which the Prefect layer implements (``blocks/resolve.py``) so the core never
imports Prefect. ``DiskAdapter`` gives every method a default that refuses with an ``InputError``
naming the kind, so a kind implements only what its platform can do; the role sets say the same
for a whole stage, so a caller can refuse before it starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Protocol

from imageport.disks.convert import ConvertResult
from imageport.disks.io import FileSystem
from imageport.engine.backend import CeBackend
from imageport.errors import InputError
from imageport.guest.installers import InstallerFolder
from imageport.models import (
    DEFAULT_DISK_FORMAT,
    ExportSpec,
    PrepareSpec,
    ShareDiskFormat,
    Stage,
    TargetPlatform,
    UploadSpec,
)
from imageport.platforms.pvs.store import StoreFolder
from imageport.preflight.limits import SourceFacts
from imageport.results import CreatedResource, StageResult, from_convert
from imageport.transfer.copy import copy_image

Opened = tuple[FileSystem, str]  # an image as the disk engine opens it: its file system and path
Copier = Callable[..., ConvertResult]  # ``copy_image``'s signature: how an export copies its source


class Connectors(Protocol):
    """Connector lookup, injected: the core adapter built from connector ``name`` of ``connector_kind``.

    ``where`` names the reference being resolved, for the refusal when ``name`` is another kind.
    """

    def build(self, name: str, connector_kind: str, where: str) -> Any: ...


@dataclass(frozen=True)
class CeHost:
    """How a connector kind hosts compositing engines.

    ``backend(config)`` builds the ``CeBackend`` from the saved connector's config; ``in_use(config)``
    says whether imageport can have made CEs there at all (the reaper skips one that cannot); ``boots``,
    whether its CE is a machine whose console boot diagnostics can capture.
    """

    connector_kind: str
    backend: Callable[[Any], CeBackend]
    in_use: Callable[[Any], bool] = lambda config: True
    boots: bool = True  # a machine with a console (boot diagnostics); the local CE is a process


ALL_STAGES = frozenset(Stage)


class DiskAdapter:
    """One disk-reference kind: its text form, how it is read and written, cached, prepared, exported."""

    kind: ClassVar[str]
    ref_type: ClassVar[type]
    connector_kind: ClassVar[str]
    schemes: ClassVar[tuple[str, ...]]  # the first is the one ``format`` writes
    shape: ClassVar[str]  # the text's shape, for refusals: e.g. smb://CONNECTOR/path
    title: ClassVar[str]  # e.g. "an SMB share file", for messages
    source_of: ClassVar[frozenset[Stage]] = frozenset()
    target_of: ClassVar[frozenset[Stage]] = frozenset()
    target_platform: ClassVar[TargetPlatform | None] = None  # what a disk of this kind is prepared for
    # Stage caching: how long a cached stage reading this kind stays valid; None = until the identity changes.
    cache_expiry: ClassVar[timedelta | None] = None
    # The CE that prepares this kind can receive installers (its backend is ``engine.backend.CarriesFiles``).
    stages_installers: ClassVar[bool] = False
    # Its upload reads the image front to back (no whole-file transform), so a port's export can stream
    # into it as it copies (``transfer.fanout``); otherwise it uploads from the staging file afterwards.
    streams_upload: ClassVar[bool] = False
    # Its platform boots a prepared image once in a helper VM (finalize; ``finalize_source`` answers);
    # otherwise ``finalize_refusal`` says where the startup actions run instead.
    finalizes: ClassVar[bool] = False
    finalize_refusal: ClassVar[str] = (
        "imageport boots no helper VM for it: boot the image once on its target platform and shut it down after "
        "firstboot.log ends with 'all actions done'"
    )

    # --- text ----------------------------------------------------------------------------------------

    def parse(self, text: str, field: str = "location") -> Any:
        """``text`` (one of ``schemes``) as a reference; a refusal names ``field`` and ``shape``."""
        raise NotImplementedError

    def format(self, ref: Any) -> str:
        """The canonical text of ``ref``: ``parse(format(ref)) == ref``. Never a secret."""
        raise NotImplementedError

    def name(self, ref: Any) -> str:
        """The short name of ``ref`` on its platform (a path, a disk name, a VM), for task names."""
        raise NotImplementedError

    def describe(self, ref: Any) -> str:
        return self.format(ref)

    # --- roles ---------------------------------------------------------------------------------------

    def can(self, role: str, stage: Stage) -> bool:
        """Whether this kind can be the ``source`` or ``target`` of ``stage``."""
        return stage in (self.source_of if role == "source" else self.target_of)

    # --- reading and writing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def open_read(self, ref: Any, connectors: Connectors) -> Iterator[tuple[FileSystem, str]]:
        """The file system and path the disk engine opens ``ref`` from, for as long as the block runs."""
        raise InputError(f"{self.describe(ref)}: a {self.kind} disk is read by exporting it first")
        yield  # pragma: no cover

    @contextlib.contextmanager
    def open_write(self, ref: Any, connectors: Connectors) -> Iterator[tuple[FileSystem, str]]:
        """The file system and path a stage writes ``ref`` at (file kinds only)."""
        raise InputError(f"{self.describe(ref)}: {self.title} is not written as a file")
        yield  # pragma: no cover

    @contextlib.contextmanager
    def installer_folder(self, ref: Any, connectors: Connectors) -> Iterator[InstallerFolder]:
        """The folder ``ref`` names, to choose and check installers from (``guest.installers``); the default
        lists it through its file system's output store (a share, a local folder)."""
        with self.open_read(ref, connectors) as (fs, folder):
            yield InstallerFolder(fs, folder, fs.output_store().listdir(folder))

    @contextlib.contextmanager
    def store_folder(self, ref: Any, connectors: Connectors) -> Iterator[StoreFolder]:
        """The PVS store folder ``ref`` names."""
        raise InputError(
            f"{self.describe(ref)}: a PVS store is a folder on a file-share connector or a local one, "
            f"not {self.title}"
        )
        yield  # pragma: no cover

    def default_disk_format(self, ref: Any, connectors: Connectors) -> ShareDiskFormat:
        """The container an export or publish writes to ``ref`` when its options name none (Citrix's VHDX)."""
        return DEFAULT_DISK_FORMAT

    # --- caching -------------------------------------------------------------------------------------

    def identity(self, ref: Any, connectors: Connectors) -> str:
        """What names the current content of ``ref`` (``missing`` when it does not exist)."""
        return f"{self.kind} {ref!r}"

    # --- stages --------------------------------------------------------------------------------------

    def write_image(self, spec: UploadSpec, source: Opened, connectors: Connectors, *, progress: Any,
                    run_id: str, checkpoint_dir: Any) -> StageResult:  # fmt: skip
        """Upload ``spec.source``, opened by the caller as ``source`` (its file system and path: any readable
        kind), onto ``spec.target`` (this kind): the stage's result, converted from the core's own
        (``imageport.results``)."""
        raise InputError(
            f"target kind {self.kind}: uploads go to an Azure managed disk, a vSphere datastore or the local platform"
        )

    def export(self, spec: ExportSpec, connectors: Connectors, output_fs: FileSystem, output: str, *,
               progress: Any, run_id: str, copy: Copier = copy_image) -> StageResult:  # fmt: skip
        """Export ``spec.source`` (this kind) to ``output``: the stage's result (``imageport.results``).

        ``run_id`` (the Prefect flow run's, as a CE's) and ``spec.tags`` mark what the export creates on the
        platform (a snapshot, an image), so the reaper keeps it while that run lives. ``spec.disk_format`` is
        set (``registry.disk_format_for``). The default reads the source as a file (``open_read``; it creates
        nothing) and copies it with ``copy`` (``copy_image``, or a ``transfer.fanout.StreamCopier`` that streams
        the source into the targets as well).
        """
        with self.open_read(spec.source, connectors) as (source_fs, path):
            copied = copy(
                path, source_fs, output, output_fs, spec.disk_format.writes, progress=progress,
                sha256=spec.hash_disk, md5=spec.hash_disk, wait_lock=spec.wait_lock, verify=spec.verify.value,
                source_format=getattr(spec.source, "format", None),  # a file reference may state its format
            )  # fmt: skip
        return from_convert(copied, Stage.EXPORT)

    def prepared(self, ref: Any, name: str | None = None, snapshot: str | None = None) -> Any:
        """The reference of the prepared copy of ``ref`` (``name``: the output's name where outputs are named;
        ``snapshot``: keep it as a snapshot of that name, where the platform has snapshots)."""
        raise InputError(
            f"targets: a {self.kind} target is not supported yet; use an Azure disk, a vSphere datastore disk "
            "or the local platform"
        )

    def plain(self, ref: Any) -> Any:
        """``ref`` without the options only the stage writing it uses (what later stages read it as)."""
        return ref

    def finish_prepare(self, spec: PrepareSpec, connectors: Connectors) -> list[CreatedResource]:
        """Once the prepared copy is in place: what else ``spec`` asks of it (e.g. a VM); what that created."""
        return []

    def prepare_outputs(self, output: Any) -> dict[str, Any]:
        """The ``PrepareSpec`` fields that make a prepare write ``output`` (a ``prepared`` reference)."""
        raise NotImplementedError

    def prepare_source(self, spec: PrepareSpec, connectors: Connectors) -> tuple[Any, str]:
        """The compositing engine's source for ``spec.disk`` (this kind) and the id of its output."""
        raise InputError(
            f"a {self.kind} disk is prepared where it will run: upload it to the local platform, Azure or a "
            "vSphere datastore first"
        )

    def finalize_source(self, ref: Any, connectors: Connectors) -> Any:
        """What the helper VM of a finalize boots (``engine.finalize``): the disk ``ref`` itself, on its platform."""
        raise InputError(f"finalize: {self.title} -- {self.finalize_refusal}")

    def diagnostics_source(self, ref: Any, connectors: Connectors) -> Any | None:
        """The compositing engine's source for a read-only report on ``ref`` (a scratch copy where the disk
        lives), or None: the disk engine reads it in place (a local file)."""
        raise InputError(
            f"diagnostics: {self.title} is not read for a report; name the disk on the platform that hosts it "
            "(a local file, an Azure disk or snapshot, a vSphere datastore disk) or copy it to a local connector"
        )

    # --- checks before data moves (tasks/checks) -------------------------------------------------------

    def source_facts(self, ref: Any, connectors: Connectors) -> SourceFacts | None:
        """What ``ref`` says as a source without moving data: firmware, partition style, size (None: nothing)."""
        return None

    def output_exists(self, ref: Any, connectors: Connectors) -> str | None:
        """Whether an output named ``ref`` exists already: its state (``limits.EXISTS`` if it has none), or None."""
        return None

    def probe_folder(self, ref: Any, folder: str, connectors: Connectors, makes_folders: bool = False) -> str | None:
        """Write and delete a probe in ``folder`` of ``ref``'s connector (where a file output goes): what it proved,
        or None where there is no folder to probe. ``makes_folders``: the stage creates its folder, so the probe
        goes in the nearest one that exists."""
        return None
