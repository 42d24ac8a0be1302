"""``VmdkReader``: a descriptor (standalone or embedded) and its extents, with a parent chain."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from typing import Any

from imageport.disks.extents import MAX_CHAIN_DEPTH, SECTOR, Extent, check_virtual_size, coalesce
from imageport.disks.formats import DiskReader
from imageport.disks.io import FileSystem
from imageport.disks.local_files import LOCAL
from imageport.disks.vmdk.descriptor import MAX_DESCRIPTOR, descriptor_area_text, parse_descriptor
from imageport.disks.vmdk.extents import _Extent, _FlatExtent, _SparseExtent, _ZeroExtent
from imageport.disks.vmdk.header import MAGIC
from imageport.errors import FormatError
from imageport.models import DiskFormat


class VmdkReader(DiskReader):
    format = DiskFormat.VMDK_SPARSE

    def __init__(self, path: str, fs: FileSystem = LOCAL, _seen: tuple[str, ...] = ()) -> None:
        super().__init__(path)
        self.fs = fs
        self._parts: list[_Extent] = []
        self._descriptor_stamp: dict[str, int | str] | None = None  # a separate descriptor file's
        try:
            self._open(_seen)
        except BaseException:
            self.close()
            raise

    def _open(self, seen: tuple[str, ...]) -> None:
        source = self.fs.open(self.path)
        head = source.pread(0, 512)
        if head[:4] == MAGIC:
            first = _SparseExtent(source)
            self._parts.append(first)
            h = first.h
            if h.descriptor_offset and h.descriptor_size:
                raw = first.file.read_exact(
                    h.descriptor_offset * SECTOR,
                    min(h.descriptor_size * SECTOR, MAX_DESCRIPTOR),
                    "VMDK embedded descriptor",
                )
                desc = parse_descriptor(self.path, descriptor_area_text(self.path, raw, h.descriptor_offset * SECTOR))
            else:
                desc = {
                    "fields": {"createType": "streamOptimized" if h.compressed else "monolithicSparse"},
                    "extents": [("RW", h.capacity, "SPARSE", None, 0)],
                }
            self.descriptor = desc
            self._layout(desc, own=first)
        else:
            size = source.size
            text_bytes = source.pread(0, min(size, MAX_DESCRIPTOR))
            self._descriptor_stamp = source.stamp()
            source.close()
            if size > MAX_DESCRIPTOR or not (head.lstrip().startswith(b"#") or b"createType" in head):
                raise FormatError(
                    self.path,
                    "VMDK sparse header",
                    0,
                    f"magic is {head[:4]!r}, expected b'KDMV', and the file is not a text descriptor",
                )
            self.descriptor = parse_descriptor(self.path, descriptor_area_text(self.path, text_bytes, 0))
            self._layout(self.descriptor, own=None)
        fields = self.descriptor["fields"]
        self.create_type = fields.get("createType", "")
        self.subformat = self.create_type
        if self.create_type == "streamOptimized":
            self.format = DiskFormat.VMDK_STREAM
        parent_cid = fields.get("parentCID", "ffffffff").lower()
        if parent_cid != "ffffffff":
            self.parent = self._open_parent(fields.get("parentFileNameHint", ""), seen)

    def _layout(self, desc: dict[str, Any], own: _SparseExtent | None) -> None:
        fs = self.fs
        base = fs.dirname(self.path)
        start = 0
        for i, (_access, sectors, kind, name, off) in enumerate(desc["extents"]):
            length = sectors * SECTOR
            extent_path = fs.join(base, name or "")
            if kind != "ZERO" and not (own is not None and i == 0) and not (name and fs.isfile(extent_path)):
                raise FormatError(self.path, "VMDK descriptor", None, f"extent {i} file {name!r} not found")
            if kind == "ZERO":
                part: _Extent = _ZeroExtent()
            elif kind in ("FLAT", "VMFS", "VMFSRAW", "VMFSRDM"):
                part = _FlatExtent(fs.open(extent_path), off * SECTOR, length)
                self._parts.append(part)
            elif own is not None and i == 0:
                part = own
            else:
                part = _SparseExtent(fs.open(extent_path))
                self._parts.append(part)
            if isinstance(part, _SparseExtent) and part.length < length:
                raise FormatError(
                    self.path,
                    "VMDK descriptor",
                    None,
                    f"extent {i} claims {length} bytes, its file holds {part.length}",
                )
            part.start, part.length = start, length
            if kind == "ZERO":
                self._parts.append(part)
            start += length
        self._extents_by_start = sorted((p for p in self._parts), key=lambda p: p.start)
        self.virtual_size = check_virtual_size(self.path, "VMDK descriptor", None, start)

    def _open_parent(self, hint: str, seen: tuple[str, ...]) -> DiskReader:
        fs = self.fs
        seen = (*seen, fs.realpath(self.path))
        if len(seen) > MAX_CHAIN_DEPTH:
            raise FormatError(self.path, "VMDK parent chain", None, f"longer than {MAX_CHAIN_DEPTH} disks")
        # A hint is relative to the child's folder; an absolute one (a datastore path) by its name.
        candidate = fs.join(fs.dirname(self.path), posixpath.basename(hint.replace("\\", "/"))) if hint else ""
        if not candidate or not fs.isfile(candidate):
            raise FormatError(self.path, "VMDK parentFileNameHint", None, f"parent {hint!r} not found")
        if fs.realpath(candidate) in seen:
            raise FormatError(self.path, "VMDK parent chain", None, f"loops back to {candidate}")
        parent = VmdkReader(candidate, fs, _seen=seen)
        if parent.virtual_size != self.virtual_size:
            parent.close()
            raise FormatError(self.path, "VMDK parent", None, f"{candidate} has a different size")
        return parent

    def _below(self, offset: int, view: memoryview) -> None:
        if self.parent is None:
            view[:] = bytes(len(view))
        else:
            self.parent.readinto(offset, view)

    def extents(self) -> Iterator[Extent]:
        own = coalesce(
            Extent(part.start + e.offset, e.length) for part in self._extents_by_start for e in part.allocated()
        )
        if self.parent is None:
            return own
        from heapq import merge

        return coalesce(merge(own, self.parent.extents(), key=lambda e: e.offset))

    def _read_into(self, offset: int, view: memoryview) -> None:
        pos = 0
        for part in self._extents_by_start:
            if pos >= len(view):
                break
            voff = offset + pos
            if voff >= part.start + part.length or voff < part.start:
                continue
            n = min(part.start + part.length - voff, len(view) - pos)
            start = part.start
            part.read_into(voff - start, view[pos : pos + n], lambda o, v, s=start: self._below(s + o, v))
            pos += n

    def details(self) -> dict[str, Any]:
        return {
            "create_type": self.create_type,
            "extents": len(self.descriptor["extents"]),
            "parent": self.parent.path if self.parent else None,
        }

    def stamps(self) -> list[dict[str, int | str]]:
        files = [p.file.stamp() for p in self._parts if isinstance(p, _FlatExtent | _SparseExtent)]
        return [self._descriptor_stamp, *files] if self._descriptor_stamp is not None else files

    def change_markers(self) -> dict[str, str]:
        fields = self.descriptor["fields"]
        return {"vmdk_cid": fields.get("CID", "").lower(), "vmdk_parent_cid": fields.get("parentCID", "").lower()}

    def metadata(self) -> Iterator[bytes]:
        yield json.dumps(self.descriptor, sort_keys=True, default=str).encode()
        for part in self._parts:
            if isinstance(part, _SparseExtent):
                yield repr(part.h).encode()
                yield part.gd.tobytes()

    def close(self) -> None:
        for part in self._parts:
            part.close()
        super().close()
