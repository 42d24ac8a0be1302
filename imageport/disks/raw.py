"""Raw disk images: the bytes are the disk.

The allocation map is the file system's own (``SEEK_DATA``/``SEEK_HOLE`` locally), so
a sparse raw file of 127 GiB with 20 GiB written costs 20 GiB of reads. The
writer leaves holes where nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator

from imageport.disks.extents import Extent
from imageport.disks.formats import DiskWriter, FileReader
from imageport.disks.io import FileSystem, Sink
from imageport.disks.local_files import LOCAL
from imageport.models import DiskFormat


class RawReader(FileReader):
    format = DiskFormat.RAW

    def __init__(self, path: str, fs: FileSystem = LOCAL, size: int | None = None) -> None:
        super().__init__(path, fs)
        self.virtual_size = self.file.size if size is None else size

    def extents(self) -> Iterator[Extent]:
        return self.file.data_extents(0, self.virtual_size)

    def _read_into(self, offset: int, view: memoryview) -> None:
        got = self.file.preadv(view, offset)
        if got < len(view):  # past EOF of a short file: zeros
            view[got:] = bytes(len(view) - got)


class RawWriter(DiskWriter):
    format = DiskFormat.RAW
    alignment = 1

    def __init__(self, sink: Sink, virtual_size: int) -> None:
        super().__init__(sink, virtual_size)
        sink.truncate(virtual_size)  # a hole of the full size; data fills it in place

    def _write(self, offset: int, data: memoryview) -> None:
        self.sink.pwrite(offset, data)

    def _finish(self) -> None:
        pass
