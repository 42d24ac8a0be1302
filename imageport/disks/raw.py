"""Raw disk images: the bytes are the disk.

The allocation map is the file system's own (``SEEK_DATA``/``SEEK_HOLE``), so
a sparse raw file of 127 GiB with 20 GiB written costs 20 GiB of reads. The
writer leaves holes where nothing is written.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

from imageport.disks.base import DiskWriter, Extent, FileReader, Sink
from imageport.models import DiskFormat


def file_data_extents(fd: int, start: int, end: int) -> Iterator[Extent]:
    """Data ranges of a file between ``start`` and ``end`` as the file system reports them."""
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after pos
                return
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # no sparse support: all data
                yield Extent(pos, end - pos)
                return
            raise
        if data >= end:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield Extent(data, hole - data)
        pos = hole


class RawReader(FileReader):
    format = DiskFormat.RAW

    def __init__(self, path: str, size: int | None = None) -> None:
        super().__init__(path)
        self.virtual_size = self.file.size if size is None else size

    def extents(self) -> Iterator[Extent]:
        return file_data_extents(self.file.fd, 0, self.virtual_size)

    def _read_into(self, offset: int, view: memoryview) -> None:
        got = os.preadv(self.file.fd, [view], offset)
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
