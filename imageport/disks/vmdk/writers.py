"""VMDK writers: streamOptimized (compressed grain markers) and monolithicSparse."""

from __future__ import annotations

import os
import struct
import zlib
from array import array
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from imageport.disks.extents import SECTOR, block_runs, is_zero, pack_array
from imageport.disks.formats import DiskWriter
from imageport.disks.io import Sink
from imageport.disks.vmdk.descriptor import descriptor_text
from imageport.disks.vmdk.header import (
    FLAG_COMPRESSED,
    FLAG_MARKERS,
    FLAG_NEWLINE,
    FLAG_RGD,
    GD_AT_END,
    GRAIN_SECTORS,
    GTES_PER_GT,
    MARKER_FOOTER,
    MARKER_GD,
    MARKER_GT,
    SparseHeader,
    build_header,
)
from imageport.errors import InputError
from imageport.models import DiskFormat


class _GrainBuffer:
    """Collects ascending writes into whole grains (64 KiB), handing each finished grain on."""

    def __init__(self, grain_bytes: int, emit: Callable[[int, bytes], None]) -> None:
        self.grain_bytes = grain_bytes
        self.emit = emit
        self.index = -1
        self.buf = bytearray(grain_bytes)

    def write(self, offset: int, data: memoryview) -> None:
        for grain, inner, pos, n in block_runs(offset, len(data), self.grain_bytes):
            if grain != self.index:
                self.flush()
                self.index = grain
            self.buf[inner : inner + n] = data[pos : pos + n]

    def flush(self) -> None:
        if self.index >= 0:
            grain = bytes(self.buf)
            if not is_zero(grain):
                self.emit(self.index, grain)
            self.buf[:] = bytes(self.grain_bytes)
            self.index = -1


class StreamOptimizedVmdkWriter(DiskWriter):
    """streamOptimized VMDK (what vSphere imports and NFC exports): header, descriptor,
    compressed grain markers, a GT after each 32 MiB region with data, GD, footer, EOS.

    Deflate runs on a thread pool (zlib releases the GIL) over batches of grains;
    results are written strictly in order, with a bounded number of batches in flight.
    """

    format = DiskFormat.VMDK_STREAM

    def __init__(
        self, sink: Sink, virtual_size: int, level: int = 6, threads: int | None = None, extent_name: str | None = None
    ) -> None:
        if virtual_size % SECTOR:
            raise InputError(f"{sink.name}: size {virtual_size} is not a multiple of 512")
        super().__init__(sink, virtual_size)
        self.level = level
        sectors = virtual_size // SECTOR
        name = extent_name or Path(sink.name).name
        desc = descriptor_text("streamOptimized", sectors, f'RW {sectors} SPARSE "{name}"').encode()
        desc_sectors = -(-len(desc) // SECTOR)
        self.h = SparseHeader(
            3,
            FLAG_NEWLINE | FLAG_COMPRESSED | FLAG_MARKERS,
            sectors,
            GRAIN_SECTORS,
            1,
            desc_sectors,
            GTES_PER_GT,
            0,
            GD_AT_END,
            GRAIN_SECTORS,
            1,
        )
        self.grain_bytes = GRAIN_SECTORS * SECTOR
        self.gd = [0] * -(-sectors // (GRAIN_SECTORS * GTES_PER_GT))
        self.gt: list[int] = []
        self.gt_index = -1
        sink.pwrite(0, build_header(self.h))
        sink.pwrite(SECTOR, desc.ljust(desc_sectors * SECTOR, b"\0"))
        self.pos = GRAIN_SECTORS * SECTOR
        self.pool = ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 2, thread_name_prefix="deflate")
        self.window: deque[Future[list[tuple[int, bytes]]]] = deque()
        self.max_in_flight = 4 * (threads or os.cpu_count() or 2)
        self.batch: list[tuple[int, bytes]] = []
        self.grains = _GrainBuffer(self.grain_bytes, self._queue)

    def _queue(self, index: int, grain: bytes) -> None:
        self.batch.append((index, grain))
        if len(self.batch) >= 16:
            self._submit()

    def _submit(self) -> None:
        if self.batch:
            batch, self.batch = self.batch, []
            self.window.append(self.pool.submit(self._compress, batch))
            while len(self.window) > self.max_in_flight:
                self._emit(self.window.popleft().result())

    def _compress(self, batch: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        return [(index, zlib.compress(grain, self.level)) for index, grain in batch]

    def _emit(self, compressed: list[tuple[int, bytes]]) -> None:
        for index, data in compressed:
            gt_index = index // GTES_PER_GT
            if gt_index != self.gt_index:
                self._close_gt()
                self.gt_index = gt_index
                self.gt = [0] * GTES_PER_GT
            record = struct.pack("<QI", index * GRAIN_SECTORS, len(data)) + data
            padded = -(-len(record) // SECTOR) * SECTOR
            self.gt[index % GTES_PER_GT] = self.pos // SECTOR
            self.sink.pwrite(self.pos, record + bytes(padded - len(record)))
            self.pos += padded

    def _metadata(self, kind: int, payload: bytes) -> int:
        sectors = len(payload) // SECTOR
        self.sink.pwrite(self.pos, struct.pack("<QII", sectors, 0, kind).ljust(SECTOR, b"\0"))
        start = self.pos // SECTOR + 1
        self.sink.pwrite(self.pos + SECTOR, payload)
        self.pos += SECTOR + len(payload)
        return start

    def _close_gt(self) -> None:
        if self.gt_index >= 0:
            self.gd[self.gt_index] = self._metadata(MARKER_GT, struct.pack(f"<{GTES_PER_GT}I", *self.gt))
            self.gt_index = -1

    def _write(self, offset: int, data: memoryview) -> None:
        self.grains.write(offset, data)

    def _finish(self) -> None:
        try:
            self.grains.flush()
            self._submit()
            while self.window:
                self._emit(self.window.popleft().result())
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self._close_gt()
        gd_bytes = struct.pack(f"<{len(self.gd)}I", *self.gd)
        gd_sector = self._metadata(MARKER_GD, gd_bytes.ljust(-(-len(gd_bytes) // SECTOR) * SECTOR, b"\0"))
        footer = SparseHeader(**{**self.h.__dict__, "gd_offset": gd_sector})
        self._metadata(MARKER_FOOTER, build_header(footer))
        self.sink.pwrite(self.pos, bytes(SECTOR))  # EOS
        self.pos += SECTOR
        self.sink.truncate(self.pos)

    def abort(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        super().abort()


class MonolithicSparseVmdkWriter(DiskWriter):
    """monolithicSparse VMDK: header, embedded descriptor, redundant and primary GD/GTs
    preallocated, then 64 KiB grains appended as data arrives.

    Writes arrive in ascending order, so each grain table is complete once a write
    moves past its 32 MiB span: it is written out then (to both GT copies) and only
    the current one is kept in memory, whatever the disk size. Tables never touched
    stay holes in the file, which read as empty tables.
    """

    format = DiskFormat.VMDK_SPARSE

    def __init__(self, sink: Sink, virtual_size: int, extent_name: str | None = None) -> None:
        if virtual_size % SECTOR:
            raise InputError(f"{sink.name}: size {virtual_size} is not a multiple of 512")
        super().__init__(sink, virtual_size)
        sectors = virtual_size // SECTOR
        self.grain_bytes = GRAIN_SECTORS * SECTOR
        self.num_gts = -(-sectors // (GRAIN_SECTORS * GTES_PER_GT))
        gd_sectors = -(-self.num_gts * 4 // SECTOR)
        self.gt_sectors = GTES_PER_GT * 4 // SECTOR
        desc_offset, desc_sectors = 1, 20
        self.rgd = desc_offset + desc_sectors
        self.rgt = self.rgd + gd_sectors
        self.gd_sector = self.rgt + self.num_gts * self.gt_sectors
        self.gt0 = self.gd_sector + gd_sectors
        overhead = -(-(self.gt0 + self.num_gts * self.gt_sectors) // GRAIN_SECTORS) * GRAIN_SECTORS
        self.h = SparseHeader(
            1,
            FLAG_NEWLINE | FLAG_RGD,
            sectors,
            GRAIN_SECTORS,
            desc_offset,
            desc_sectors,
            GTES_PER_GT,
            self.rgd,
            self.gd_sector,
            overhead,
            0,
        )
        name = extent_name or Path(sink.name).name
        self.desc = descriptor_text("monolithicSparse", sectors, f'RW {sectors} SPARSE "{name}"').encode()
        self.gt_index = -1
        self.gt = array("I", [0]) * GTES_PER_GT
        self.next_free = overhead * SECTOR

    def _flush_gt(self) -> None:
        if self.gt_index >= 0:
            table = pack_array(self.gt, "little")
            for base in (self.rgt, self.gt0):
                self.sink.pwrite((base + self.gt_index * self.gt_sectors) * SECTOR, table)
        self.gt = array("I", [0]) * GTES_PER_GT

    def _write(self, offset: int, data: memoryview) -> None:
        for grain, inner, pos, n in block_runs(offset, len(data), self.grain_bytes):
            gt_index, slot = divmod(grain, GTES_PER_GT)
            if gt_index != self.gt_index:
                self._flush_gt()
                self.gt_index = gt_index
            if not self.gt[slot]:
                self.gt[slot] = self.next_free // SECTOR
                self.next_free += self.grain_bytes
            self.sink.pwrite(self.gt[slot] * SECTOR + inner, data[pos : pos + n])

    def _finish(self) -> None:
        sink = self.sink
        self._flush_gt()
        sink.truncate(self.next_free)
        sink.pwrite(0, build_header(self.h))
        sink.pwrite(SECTOR, self.desc.ljust(20 * SECTOR, b"\0"))
        for gd_start, gt_start in ((self.rgd, self.rgt), (self.gd_sector, self.gt0)):
            # Grain directories are 4 bytes per 32 MiB: written in slices to stay small.
            for first in range(0, self.num_gts, 65536):
                count = min(65536, self.num_gts - first)
                gd = array(
                    "I",
                    range(
                        gt_start + first * self.gt_sectors,
                        gt_start + (first + count) * self.gt_sectors,
                        self.gt_sectors,
                    ),
                )
                raw = pack_array(gd, "little")
                sink.pwrite(gd_start * SECTOR + first * 4, raw)
