"""The orchestrator's side of installer delivery: checked installers put where a CE's agent reads them.

The installers were chosen and checked (``guest.installers.inspect_folder``) before the CE was created.
An installer the CE can fetch by itself (a blob behind the folder's read SAS, and the backend says its CE
``reaches`` that URL: an Azure CE) is named by that URL: nothing is copied. Every other one is copied from
its folder's file system (a share, a local or datastore folder, a blob container) to the CE by the backend
(``CarriesFiles.deliver``: a file in the local CE's work directory, a blob behind a read-only SAS for an
Azure CE, a read-only disk of its own for a vSphere CE), and the job names each with where to fetch it.
The agent checks size and sha256 again (``engine.installer_fetch``), so what is staged is byte for byte
what was checked.
"""

from __future__ import annotations

from imageport.disks.io import FileSystem
from imageport.engine.backend import CarriesFiles
from imageport.engine.job import JobInstaller
from imageport.engine.lifecycle import CompositingEngine
from imageport.errors import InputError
from imageport.guest.installers import FoundInstaller, opened_file


def deliver_installers(ce: CompositingEngine, fs: FileSystem, found: list[FoundInstaller]) -> list[JobInstaller]:
    """Each checked installer on the CE; what the job lists."""
    if not found:
        return []
    backend = ce.backend
    if not isinstance(backend, CarriesFiles):
        raise InputError(f"installers: a {backend.platform} compositing engine cannot receive installers")
    delivered = []
    for item in found:
        if item.url is not None and backend.reaches(item.url):
            fetch = item.url
        else:
            with opened_file(fs, item.path) as source:
                fetch = backend.deliver(ce.provisioned.engine, item.staged.name, source)
        delivered.append(JobInstaller(installer=item.staged, fetch=fetch))
    return delivered
