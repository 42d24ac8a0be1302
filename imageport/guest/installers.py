"""The Citrix installers a prepare stages: chosen from a folder on any file system, and checked first.

The folder is a share or local reference (``PrepareOptions.installers``), opened by its adapter; this
module sees only a ``FileSystem`` and a folder in it. Each component the options ask for
(``pvs_install_version`` with PVS provisioning, ``mcsio``, ``misa``) takes the last file, by name, whose
name starts with the component's prefix (``pvs``, ``mcsio``, ``misa``). Each is checked before anything
is created or changed: a PE's product version (the version resource) and its Authenticode signer
(recorded), an MSI's digest only; the sha256 of every byte; and the PVS installer's version against
``pvs_install_version``, a mismatch refused. The same checks serve the preflight and the prepare task.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from imageport.disks.io import ByteSource, FileSystem, copy_bytes
from imageport.errors import InputError
from imageport.guest.pe import pe_info
from imageport.models import InstallType, PrepareOptions, ProvisioningType
from imageport.models.installers import COMPONENT_LABELS, Component, StagedInstaller


@dataclass(frozen=True)
class InstallerFolder:
    """An installers folder as the orchestrator reads it (from its adapter's ``installer_folder``): its file
    system, the folder's path in it, the names of the files directly in it, and, where a CE could fetch a
    file by itself, its URL (a blob's, with the SAS: a secret)."""

    fs: FileSystem
    folder: str
    names: list[str]
    url: Callable[[str], str | None] = lambda path: None


@dataclass(frozen=True)
class FoundInstaller:
    """A checked installer and where it is, in the folder's file system."""

    staged: StagedInstaller
    path: str
    url: str | None = None  # where a CE that reaches it may fetch it itself (a secret); None: delivered


def wanted(options: PrepareOptions) -> list[tuple[Component, InstallType]]:
    """The components the options ask to stage, in the order their actions run."""
    found = []
    if options.provisioning_type is ProvisioningType.PVS and options.pvs_install_version:
        found.append((Component.PVS, InstallType.INSTALL))  # the version asks for it: install when missing
    for component, choice in ((Component.MCSIO, options.mcsio), (Component.MISA, options.misa)):
        if choice is not InstallType.SKIP:
            found.append((component, choice))
    return found


def version_matches(wanted_version: str, actual: str) -> bool:
    """``2402.0`` matches ``2402.0.0.1129``: each part asked for equals the actual version's part."""
    asked, have = wanted_version.split("."), actual.split(".")
    return len(asked) <= len(have) and [int(a) for a in asked] == [int(h) for h in have[: len(asked)]]


def choose(options: PrepareOptions, names: list[str], where: str) -> list[tuple[Component, InstallType, str]]:
    """The file name staged for each wanted component; a component with none is refused."""
    chosen = []
    for component, choice in wanted(options):
        matches = sorted(n for n in names if n.lower().startswith(component.value) and
                         n.lower().endswith((".exe", ".msi")))  # fmt: skip
        if not matches:
            raise InputError(
                f"{COMPONENT_LABELS[component]} requested but {where} has no .exe or .msi starting with "
                f"{component.value!r} (found: {', '.join(sorted(names)) or 'nothing'})"
            )
        chosen.append((component, choice, matches[-1]))
    return chosen


def _sha256(source: ByteSource) -> str:
    digest = hashlib.sha256()
    copy_bytes(source, digest.update)
    return digest.hexdigest()


def check(component: Component, choice: InstallType, name: str, source: ByteSource, options: PrepareOptions,
          where: str) -> StagedInstaller:  # fmt: skip
    """One installer's name, version, signer and sha256; the PVS version compared with the options'.
    ``where`` names the file in messages (the folder's reference and the name)."""
    version = signer = None
    if name.lower().endswith(".exe"):
        info = pe_info(source, source.size, where)
        version, signer = info.version, info.signer
    asked = options.pvs_install_version if component is Component.PVS else None
    if asked is not None:
        if version is None:
            raise InputError(f"{where}: has no version resource to compare with pvs_install_version {asked}")
        if not version_matches(asked, version):
            raise InputError(f"{where}: is version {version}, but pvs_install_version asks for {asked}; "
                             "stage the matching installer or change pvs_install_version")  # fmt: skip
    return StagedInstaller(component=component, install=choice, name=name, size=source.size,
                           sha256=_sha256(source), version=version, signer=signer)  # fmt: skip


@contextmanager
def opened_file(fs: FileSystem, path: str) -> Iterator[ByteSource]:
    """``fs.open(path)``, closed when the block ends."""
    source = fs.open(path)
    try:
        yield source
    finally:
        source.close()


def inspect_folder(found_in: InstallerFolder, options: PrepareOptions, where: str) -> list[FoundInstaller]:
    """Choose and check every installer the options stage from the folder (``where`` names it)."""
    if not wanted(options):
        return []
    fs, folder = found_in.fs, found_in.folder
    found = []
    for component, choice, name in choose(options, found_in.names, where):
        path = fs.join(folder, name)
        with opened_file(fs, path) as source:
            staged = check(component, choice, name, source, options, f"{where.rstrip('/')}/{name}")
            found.append(FoundInstaller(staged, path, found_in.url(path)))
    return found


@dataclass(frozen=True)
class Staging:
    """What a prepare stages: the checked installers and the local file holding each (by name)."""

    installers: list[StagedInstaller]
    files: dict[str, str]


def local_staging(folder: str, options: PrepareOptions) -> Staging:
    """The installers of a local folder (``imageport prepare --installers DIR`` and the local CE)."""
    from imageport.disks.local_files import LOCAL

    found = inspect_folder(InstallerFolder(LOCAL, folder, LOCAL.output_store().listdir(folder)), options, folder)
    return Staging([f.staged for f in found], {f.staged.name: f.path for f in found})
