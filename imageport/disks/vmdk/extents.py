"""The extents a VMDK descriptor lists: zero, flat (a byte range of a file) and hosted sparse."""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait

from imageport.disks.extents import SECTOR, Extent, block_runs, unpack_array
from imageport.disks.io import ByteSource
from imageport.disks.vmdk.header import FLAG_ZERO_GTE, GD_AT_END, SparseHeader, inflate_grain, parse_header
from imageport.errors import FormatError

SPAN_LIMIT = 8 * 1024 * 1024  # read a piece's grains in one go when they lie within this much of the file


class _Extent:
    """One extent of a VMDK: ``length`` virtual bytes starting at the disk's ``start``."""

    start = 0
    length = 0

    def allocated(self) -> Iterator[Extent]:
        raise NotImplementedError

    def read_into(self, offset: int, view: memoryview, below: Callable[[int, memoryview], None]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _ZeroExtent(_Extent):
    def allocated(self) -> Iterator[Extent]:
        return iter(())

    def read_into(self, offset: int, view: memoryview, below: Callable[[int, memoryview], None]) -> None:
        view[:] = bytes(len(view))


class _FlatExtent(_Extent):
    def __init__(self, source: ByteSource, base: int, length: int) -> None:
        self.file = source
        path = source.path
        self.base = base
        self.length = length
        if base + length > self.file.size:
            raise FormatError(
                path, "VMDK flat extent", base, f"extent needs {base + length} bytes, the file has {self.file.size}"
            )

    def allocated(self) -> Iterator[Extent]:
        for ext in self.file.data_extents(self.base, self.base + self.length):
            yield Extent(ext.offset - self.base, ext.length)

    def read_into(self, offset: int, view: memoryview, below: Callable[[int, memoryview], None]) -> None:
        self.file.preadv(view, self.base + offset)

    def close(self) -> None:
        self.file.close()


class _SparseExtent(_Extent):
    """A hosted sparse extent: monolithicSparse, a split -s00N file, or streamOptimized."""

    def __init__(self, source: ByteSource, header: SparseHeader | None = None) -> None:
        self.file = f = source
        self.path = path = source.path
        try:
            self.h = header or parse_header(path, f.read_exact(0, 512, "VMDK sparse header"), 0)
            self._load_directory()
        except BaseException:
            f.close()
            raise
        self.length = self.h.capacity * SECTOR
        self._gt_cache: dict[int, tuple[int, ...]] = {}
        self._grain_cache: tuple[int, bytes] | None = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # one helper thread for inflating, made on first use

    def _load_directory(self) -> None:
        h, f = self.h, self.file
        if h.gd_offset == GD_AT_END and (f.size < 1536 or f.pread(f.size - 512, 512) != bytes(512)):
            # A stream always ends with an EOS marker; without it the copy was cut short,
            # even when the grain directory at the front still reads.
            raise FormatError(
                self.path,
                "VMDK end-of-stream marker",
                max(0, f.size - 512),
                "missing: the stream was cut short (interrupted download or copy?)",
            )
        if h.gd_offset == GD_AT_END:
            # streamOptimized: the footer (a header copy) before the EOS marker holds the real GD offset.
            if f.size < 1536:
                raise FormatError(self.path, "VMDK footer", None, "stream too short to hold a footer")
            footer = parse_header(self.path, f.read_exact(f.size - 1024, 512, "VMDK footer"), f.size - 1024)
            if footer.gd_offset == GD_AT_END:
                raise FormatError(self.path, "VMDK footer", f.size - 1024, "footer has no grain directory offset")
            self.h = h = footer
        self.grain_bytes = h.grain_size * SECTOR
        self.gt_span = h.gtes_per_gt * self.grain_bytes
        entries = -(-h.capacity * SECTOR // self.gt_span)
        self.gd = unpack_array(f.read_exact(h.gd_offset * SECTOR, entries * 4, "VMDK grain directory"), "I", "little")
        for i, gt in enumerate(self.gd):
            if gt and gt * SECTOR + h.gtes_per_gt * 4 > f.size:
                raise FormatError(
                    self.path,
                    "VMDK grain directory",
                    h.gd_offset * SECTOR + 4 * i,
                    f"entry {i} points to sector {gt}, past the end of the file",
                )

    def _gt(self, index: int) -> tuple[int, ...] | None:
        sector = self.gd[index]
        if sector == 0:
            return None
        table = self._gt_cache.get(index)
        if table is None:
            raw = self.file.read_exact(sector * SECTOR, self.h.gtes_per_gt * 4, "VMDK grain table")
            table = struct.unpack(f"<{self.h.gtes_per_gt}I", raw)
            if len(self._gt_cache) > 256:  # bounded: 256 tables x 2 KiB
                self._gt_cache.clear()
            self._gt_cache[index] = table
        return table

    def _grain_sector(self, grain: int) -> int:
        table = self._gt(grain // self.h.gtes_per_gt)
        return 0 if table is None else table[grain % self.h.gtes_per_gt]

    def allocated(self) -> Iterator[Extent]:
        # Walk only the grain tables that exist: a 64 TiB disk with little data has few of them.
        # Consecutive grains make one extent (one object per run, not per 64 KiB grain).
        gb, per_gt = self.grain_bytes, self.h.gtes_per_gt
        zero_gte = 1 if self.h.flags & FLAG_ZERO_GTE else -1
        run_start = run_end = -1
        for gt_index, gt_sector in enumerate(self.gd):
            if not gt_sector:
                continue
            table = self._gt(gt_index) or ()
            base = gt_index * per_gt
            for j, sector in enumerate(table):
                if not sector or sector == zero_gte:
                    continue
                start = (base + j) * gb
                if start >= self.length:
                    break
                if start != run_end:
                    if run_start >= 0:
                        yield Extent(run_start, run_end - run_start)
                    run_start = start
                run_end = min(start + gb, self.length)
        if run_start >= 0:
            yield Extent(run_start, run_end - run_start)

    def read_into(self, offset: int, view: memoryview, below: Callable[[int, memoryview], None]) -> None:
        zero_gte = 1 if self.h.flags & FLAG_ZERO_GTE else -1
        compressed: list[tuple[int, int, int, memoryview]] = []  # (grain, sector, inner, part)
        for grain, inner, pos, n in block_runs(offset, len(view), self.grain_bytes):
            part = view[pos : pos + n]
            sector = self._grain_sector(grain)
            if sector == 0:
                below(offset + pos, part)
            elif sector == zero_gte:
                part[:] = bytes(n)
            elif self.h.compressed:
                compressed.append((grain, sector, inner, part))
            else:
                if sector * SECTOR + inner + n > self.file.size:
                    raise FormatError(
                        self.path,
                        "VMDK grain table",
                        None,
                        f"grain {grain} at sector {sector} lies past the end of the file",
                    )
                self.file.preadv(part, sector * SECTOR + inner)
        if len(compressed) == 1:
            grain, sector, inner, part = compressed[0]
            part[:] = self._compressed_grain(grain, sector)[inner : inner + len(part)]
        elif compressed:
            self._inflate_many(compressed)

    def _inflate_many(self, grains: list[tuple[int, int, int, memoryview]]) -> None:
        """Many compressed grains (a 4 MiB piece holds 64): their bytes in one read where they lie
        close together (a stream stores them in order), inflated half here, half on a helper
        thread (zlib releases the GIL), so both cores work and the syscalls are one per piece."""
        payloads = self._payloads([(grain, sector) for grain, sector, _, _ in grains])

        def inflate(items: list[tuple[tuple[int, int, int, memoryview], memoryview]]) -> None:
            gb = self.grain_bytes
            for (_grain, sector, inner, part), payload in items:
                data = inflate_grain(self.path, payload, sector * SECTOR, gb)
                piece = data[inner : inner + len(part)]
                part[: len(piece)] = piece
                part[len(piece) :] = bytes(len(part) - len(piece))  # a short grain ends in zeros

        pairs = list(zip(grains, payloads, strict=True))
        half = len(pairs) // 2
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inflate")
            pool = self._pool
        helper = pool.submit(inflate, pairs[half:])
        try:
            inflate(pairs[:half])
        except BaseException:
            wait([helper])  # never leave it writing into the caller's buffer; report our (earlier) error
            raise
        helper.result()

    def _payloads(self, grains: list[tuple[int, int]]) -> list[memoryview]:
        """The compressed bytes of each (grain, sector), checked against its marker."""
        gb = self.grain_bytes
        low = min(sector for _, sector in grains) * SECTOR
        high = min(self.file.size, max(sector for _, sector in grains) * SECTOR + 12 + gb)
        span = memoryview(b"")
        if high - low <= SPAN_LIMIT:
            span = memoryview(self.file.pread(low, high - low))
        out = []
        for grain, sector in grains:
            at = sector * SECTOR - low  # never negative: low is the first sector
            if at + 12 <= len(span):
                marker = span[at : at + 12].tobytes()
            else:
                marker = self.file.read_exact(sector * SECTOR, 12, "VMDK grain marker")
            size = self._marker_size(grain, sector, marker)
            if at + 12 + size <= len(span):
                out.append(span[at + 12 : at + 12 + size])
            else:
                out.append(memoryview(self.file.read_exact(sector * SECTOR + 12, size, "VMDK grain")))
        return out

    def _marker_size(self, grain: int, sector: int, marker: bytes) -> int:
        lba, size = struct.unpack("<QI", marker)
        if lba != grain * self.h.grain_size or size == 0 or size > 2 * self.grain_bytes:
            raise FormatError(
                self.path,
                "VMDK grain marker",
                sector * SECTOR,
                f"marker says lba {lba}, size {size}; grain table expects lba {grain * self.h.grain_size}",
            )
        return size

    def _compressed_grain(self, grain: int, sector: int) -> bytes:
        with self._lock:
            cached = self._grain_cache
        if cached and cached[0] == grain:
            return cached[1]
        gb = self.grain_bytes
        size = self._marker_size(grain, sector, self.file.read_exact(sector * SECTOR, 12, "VMDK grain marker"))
        data = inflate_grain(
            self.path, self.file.read_exact(sector * SECTOR + 12, size, "VMDK grain"), sector * SECTOR, gb
        )
        data = data.ljust(gb, b"\0")
        with self._lock:
            self._grain_cache = (grain, data)
        return data

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.file.close()
