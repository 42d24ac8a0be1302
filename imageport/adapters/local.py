"""The local platform: image files under a local-directory connector, and the local compositing engine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imageport.adapters.files import FileAdapter
from imageport.adapters.protocol import ALL_STAGES, CeHost, Connectors, Opened
from imageport.disks.io import FileSystem
from imageport.disks.local_files import LOCAL
from imageport.engine.local import LocalBackend, LocalSource
from imageport.errors import InputError
from imageport.models import DiskFormat, LocalRef, PrepareSpec, Stage, TargetPlatform, UploadSpec
from imageport.names import prepared_path
from imageport.platforms.pvs.store import LocalStoreFolder, StoreFolder
from imageport.results import StageResult, from_convert
from imageport.storage.probe import probe_directory
from imageport.transfer.copy import copy_image

# The local platform keeps disks as files; the extension says which container.
LOCAL_FORMATS = {".vhd": DiskFormat.VHD, ".vhdx": DiskFormat.VHDX, ".raw": DiskFormat.RAW, ".img": DiskFormat.RAW}


class LocalAdapter(FileAdapter):
    kind = "local"
    ref_type = LocalRef
    connector_kind = "local"
    schemes = ("local",)
    shape = "local://CONNECTOR/path[?format=FMT]"
    title = "a local file"
    finalize_refusal = (
        "a local image has no hypervisor here: boot it once on the platform it was prepared for and shut it down "
        "after firstboot.log ends with 'all actions done' (or set finalize.enabled off)"
    )
    source_of = ALL_STAGES
    target_of = frozenset({Stage.EXPORT, Stage.UPLOAD, Stage.PREPARE, Stage.PUBLISH, Stage.DIAGNOSTICS})
    target_platform = TargetPlatform.LOCAL
    stages_installers = True
    streams_upload = True

    def _path(self, connector: str, path: str, connectors: Connectors, where: str) -> str:
        return str(connectors.build(connector, "local", where).path(path))

    @contextlib.contextmanager
    def open_read(self, ref: LocalRef, connectors: Connectors) -> Iterator[tuple[FileSystem, str]]:
        yield LOCAL, self._path(ref.connector, ref.path, connectors, self.describe(ref))

    @contextlib.contextmanager
    def store_folder(self, ref: LocalRef, connectors: Connectors) -> Iterator[StoreFolder]:
        folder = LocalStoreFolder(Path(self._path(ref.connector, ref.path, connectors, self.describe(ref))))
        try:
            yield folder
        finally:
            folder.close()

    def write_image(self, spec: UploadSpec, source: Opened, connectors: Connectors, *, progress: Any,
                    run_id: str, checkpoint_dir: Any) -> StageResult:  # fmt: skip
        """A file on the local platform, in the container its extension names ."""
        target = spec.target
        fmt = LOCAL_FORMATS.get("." + target.path.rsplit(".", 1)[-1].lower())
        if fmt is None:
            raise InputError(f"target {target.path}: name it .vhd, .vhdx, .raw or .img to say which format to write")
        source_fs, src = source
        with self.open_write(target, connectors) as written:
            output_fs, dst = written
            Path(dst).parent.mkdir(parents=True, exist_ok=True)  # a platform makes its own folders
            copied = copy_image(
                src, source_fs, dst, output_fs, fmt, overwrite=spec.overwrite, progress=progress,
                source_format=spec.source.format, verify=spec.verify.value,
            )  # fmt: skip
        return from_convert(copied, Stage.UPLOAD)

    def prepared(self, ref: LocalRef, name: str | None = None, snapshot: str | None = None) -> LocalRef:
        """``dir/NAME-prepared.EXT`` beside the disk (a file is named by its path: ``name`` is not used)."""
        return LocalRef(connector=ref.connector, path=prepared_path(ref.path))

    def prepare_outputs(self, output: LocalRef) -> dict[str, Any]:
        return {"output": output}

    def prepare_source(self, spec: PrepareSpec, connectors: Connectors) -> tuple[Any, str]:
        """The local CE's source: the disk's file and where its verified copy is renamed into place."""
        disk = spec.disk
        if spec.output is not None and not isinstance(spec.output, LocalRef):
            raise InputError("output: a local image is prepared into a local file; a datastore output needs a "
                             "vSphere disk")  # fmt: skip
        output = spec.output if spec.output is not None else self.prepared(disk)
        source = self._path(disk.connector, disk.path, connectors, f"disk {disk.path}")
        target = self._path(output.connector, output.path, connectors, f"output {output.path}")
        return LocalSource(LOCAL, source, target, spec.overwrite, disk.format), output.path


    def diagnostics_source(self, ref: LocalRef, connectors: Connectors) -> None:
        return None  # read in place, read-only: no CE and no copy

    def probe_folder(self, ref: LocalRef, folder: str, connectors: Connectors, makes_folders: bool = False) -> str:
        directory = connectors.build(ref.connector, "local", self.describe(ref))
        path = Path(directory.path(folder))
        while makes_folders and not path.exists() and path != directory.root:
            path = path.parent  # the local platform makes its own folders: the nearest one that exists
        return probe_directory(path, f"local://{ref.connector}/{folder}".rstrip("/"))

LOCAL_CE = CeHost("local", lambda config: LocalBackend(config.build().root), boots=False)
