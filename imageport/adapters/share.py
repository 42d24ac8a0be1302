"""Files on an SMB share connector: export output, upload input, PVS stores."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from imageport.adapters.files import FileAdapter
from imageport.adapters.protocol import Connectors
from imageport.disks.io import FileSystem
from imageport.models import ShareDiskFormat, ShareRef, Stage
from imageport.platforms.pvs.store import SmbStoreFolder, StoreFolder
from imageport.storage.probe import probe_share
from imageport.storage.smb_files import SmbFileSystem


class ShareAdapter(FileAdapter):
    kind = "share"
    ref_type = ShareRef
    connector_kind = "fileshare"
    schemes = ("smb", "share")  # share:// is what reports printed before this scheme was settled
    shape = "smb://CONNECTOR/path[?format=FMT]"
    title = "a file on an SMB share"
    finalize_refusal = (
        "a vDisk boots where PVS streams it: boot one target device from it once in private mode and shut it "
        "down after firstboot.log ends with 'all actions done', then set it standard"
    )
    source_of = frozenset({Stage.UPLOAD, Stage.PUBLISH})
    target_of = frozenset({Stage.EXPORT, Stage.PUBLISH})

    @contextlib.contextmanager
    def open_read(self, ref: ShareRef, connectors: Connectors) -> Iterator[tuple[FileSystem, str]]:
        fs = SmbFileSystem(connectors.build(ref.connector, "fileshare", self.describe(ref)))
        try:
            yield fs, ref.path
        finally:
            fs.close()

    @contextlib.contextmanager
    def store_folder(self, ref: ShareRef, connectors: Connectors) -> Iterator[StoreFolder]:
        folder = SmbStoreFolder(connectors.build(ref.connector, "fileshare", self.describe(ref)), ref.path)
        try:
            yield folder
        finally:
            folder.close()

    def default_disk_format(self, ref: ShareRef, connectors: Connectors) -> ShareDiskFormat:
        """The share connector's ``disk_format`` (Citrix's Windows File Share "Disk Format")."""
        return connectors.build(ref.connector, "fileshare", self.describe(ref)).config.disk_format

    def probe_folder(self, ref: ShareRef, folder: str, connectors: Connectors, makes_folders: bool = False) -> str:
        """A probe in ``folder`` of the share (it must exist: no stage makes its folders on a share)."""
        with connectors.build(ref.connector, "fileshare", self.describe(ref)) as share:
            return probe_share(share, folder)
