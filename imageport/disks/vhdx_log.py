"""VHDX log replay in memory (VHDX Format Specification v1.00, section 2.3): the file stays untouched.

A VHDX whose header names a log (LogGuid set) may hold metadata updates (BAT,
metadata region, even data sectors) that were logged but not yet written in
place. Hyper-V and qemu replay the log when they open the file read-write;
read-only, qemu refuses. We replay it into an overlay that every read of the
file consults, so the disk reads as it will after a replay, and nothing is
written. All fields little-endian; the log is a circular buffer of 4 KiB sectors::

    entry header (64 bytes, first sector of an entry)
        0 "loge" | 4 CRC-32C of the whole entry (this field zeroed) | 8 EntryLength (n x 4 KiB)
        12 Tail | 16 SequenceNumber u64 | 24 DescriptorCount | 28 reserved
        32 LogGuid (must equal the header's) | 48 FlushedFileOffset | 56 LastFileOffset
    descriptors (32 bytes each, after the header, filling ceil((count + 2) / 128) sectors)
        "zero": 4 reserved | 8 ZeroLength u64 | 16 FileOffset | 24 SequenceNumber
        "desc": 4 TrailingBytes | 8 LeadingBytes | 16 FileOffset | 24 SequenceNumber
    data sectors, one per "desc" descriptor, in descriptor order
        0 "data" | 4 SequenceHigh | 8 4084 bytes | 4092 SequenceLow
        the 4 KiB written = LeadingBytes + those 4084 bytes + TrailingBytes

The *active sequence* is the run of valid entries (signature, LogGuid, CRC,
consecutive sequence numbers) with the highest sequence number; replaying it
means applying its descriptors in order. Like qemu, an entry whose CRC fails
ends a sequence (it was never completely written), while a CRC-valid entry with
an invalid descriptor or data sector is a damaged file and refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from imageport.compat import SLOTS
from imageport.disks.checksums import crc32c
from imageport.disks.extents import KiB, MiB
from imageport.disks.io import ByteSource
from imageport.errors import FormatError

SECTOR = 4 * KiB
ENTRY = struct.Struct("<4sIIIQII16sQQ")
DESCRIPTOR = struct.Struct("<4s4s8sQQ")
MAX_LOG = 64 * MiB  # read whole into memory; Hyper-V and qemu write 1 MiB


@dataclass(frozen=True, **SLOTS)
class _Write:
    offset: int
    length: int
    data: bytes | None  # None: zeros


class LoggedSource(ByteSource):
    """The file as it reads after the log's writes (applied in order, later ones win)."""

    def __init__(self, base: ByteSource, writes: list[_Write], size: int) -> None:
        self.base = base
        self.path = base.path
        self.size = size
        self.writes = writes

    def preadv(self, view: memoryview, offset: int) -> int:
        want = max(0, min(len(view), self.size - offset))
        got = self.base.preadv(view[:want], offset) if offset < self.base.size else 0
        if got < want:  # past the end of the file but before LastFileOffset: zeros
            view[got:want] = bytes(want - got)
        end = offset + want
        for w in self.writes:
            lo, hi = max(offset, w.offset), min(end, w.offset + w.length)
            if lo < hi:
                part = view[lo - offset : hi - offset]
                part[:] = bytes(hi - lo) if w.data is None else w.data[lo - w.offset : hi - w.offset]
        return want

    def close(self) -> None:
        self.base.close()


@dataclass
class _Entry:
    position: int  # offset inside the log
    length: int
    sequence: int
    flushed: int
    last: int
    raw: bytes


class _Log:
    def __init__(self, source: ByteSource, header: dict[str, Any]) -> None:
        self.source = source
        self.path = source.path
        self.offset: int = header["log_offset"]
        self.length: int = header["log_length"]
        self.guid: bytes = header["log_guid"]
        where: int = header["offset"]
        if self.offset < MiB or self.offset % MiB or self.length % MiB or not 0 < self.length <= MAX_LOG:
            raise FormatError(
                self.path, "VHDX header", where, f"log at {self.offset}+{self.length} is not 1 MiB aligned or absurd"
            )
        if self.offset + self.length > source.size:
            raise FormatError(self.path, "VHDX log", self.offset, f"{self.length} bytes do not fit in the file")
        self.data = source.read_exact(self.offset, self.length, "VHDX log")

    def _sectors(self, position: int, count: int) -> bytes:
        """``count`` log sectors from ``position``, wrapping around the circular buffer."""
        out = bytearray()
        for i in range(count):
            at = (position + i * SECTOR) % self.length
            out += self.data[at : at + SECTOR]
        return bytes(out)

    def entry_at(self, position: int) -> _Entry | None:
        """The entry at ``position`` when it is complete and belongs to this log, else None."""
        if self.data[position : position + 4] != b"loge":
            return None
        _sig, crc, length, _tail, seq, count, _r, guid, flushed, last = ENTRY.unpack_from(self.data, position)
        if guid != self.guid or seq == 0 or length == 0 or length % SECTOR or length > self.length:
            return None
        if count * DESCRIPTOR.size > length:
            return None
        raw = self._sectors(position, length // SECTOR)
        if crc32c(raw[:4] + bytes(4) + raw[8:]) != crc:
            return None  # torn: never completely written
        return _Entry(position, length, seq, flushed, last, raw)

    def active_sequence(self) -> list[_Entry]:
        best: list[_Entry] = []
        position = 0
        while position < self.length:
            first = self.entry_at(position)
            if first is None:
                position += SECTOR
                continue
            run = [first]
            nxt = (position + first.length) % self.length
            while sum(e.length for e in run) < self.length:
                entry = self.entry_at(nxt)
                if entry is None or entry.sequence != run[-1].sequence + 1:
                    break
                run.append(entry)
                nxt = (nxt + entry.length) % self.length
            if not best or run[-1].sequence > best[-1].sequence:
                best = run
            if nxt <= position:  # the run wrapped around: everything has been seen
                break
            position = nxt
        return best

    def writes(self, entry: _Entry) -> list[_Write]:
        where = self.offset + entry.position
        _sig, _crc, length, _tail, seq, count, *_rest = ENTRY.unpack_from(entry.raw)
        desc_sectors = -(-(count + 2) // 128)
        data_sector = desc_sectors
        out: list[_Write] = []
        for i in range(count):
            sig, trailing, leading, file_offset, dseq = DESCRIPTOR.unpack_from(entry.raw, 64 + 32 * i)
            at = where + 64 + 32 * i
            if dseq != seq or file_offset % SECTOR or sig not in (b"zero", b"desc"):
                raise FormatError(self.path, "VHDX log descriptor", at, "bad signature, sequence or offset")
            if sig == b"zero":
                zero_length = int.from_bytes(leading, "little")
                if zero_length % SECTOR:
                    raise FormatError(self.path, "VHDX log descriptor", at, f"zero length {zero_length} is invalid")
                out.append(_Write(file_offset, zero_length, None))
                continue
            if data_sector * SECTOR >= length:
                raise FormatError(self.path, "VHDX log entry", where, "more data descriptors than data sectors")
            sector = entry.raw[data_sector * SECTOR : (data_sector + 1) * SECTOR]
            high, low = struct.unpack_from("<I", sector, 4)[0], struct.unpack_from("<I", sector, 4092)[0]
            if sector[:4] != b"data" or (high << 32 | low) != seq:
                raise FormatError(
                    self.path, "VHDX log data sector", where + data_sector * SECTOR, "bad signature or sequence"
                )
            out.append(_Write(file_offset, SECTOR, leading + sector[8:4092] + trailing))
            data_sector += 1
        return out


def replay(source: ByteSource, header: dict[str, Any]) -> ByteSource:
    """``source`` as it reads after replaying its log (itself when no active sequence is found)."""
    log = _Log(source, header)
    sequence = log.active_sequence()
    if not sequence:
        return source  # nothing complete was logged: the file is consistent as it is (qemu agrees)
    size = source.size
    writes: list[_Write] = []
    for entry in sequence:
        if entry.flushed > source.size:
            raise FormatError(
                source.path,
                "VHDX log entry",
                log.offset + entry.position,
                f"says the file was {entry.flushed} bytes when it was flushed; it has {source.size}: truncated",
            )
        writes += log.writes(entry)
        size = max(size, entry.last)
    for w in writes:
        if w.offset + w.length > size:
            raise FormatError(source.path, "VHDX log descriptor", None, f"write at {w.offset} is past the file's end")
    return LoggedSource(source, writes, size)
