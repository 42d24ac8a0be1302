"""VMDK text descriptors: the strict parser and the text the writers emit.

A text *descriptor* (standalone, or embedded in a monolithicSparse file)
lists extents: ``RW <sectors> FLAT|VMFS|SPARSE|ZERO "file" [offset]``; split
disks (``-s001.vmdk``...) are several extents laid end to end.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from imageport.disks.extents import KiB
from imageport.errors import FormatError

MAX_DESCRIPTOR = 64 * KiB
EXTENT_LINE = re.compile(
    r"^\s*(RW|RDONLY|NOACCESS)\s+(\d+)\s+(FLAT|SPARSE|ZERO|VMFS|VMFSSPARSE|VMFSRDM|VMFSRAW)"
    r'(?:\s+"([^"]*)"(?:\s+(\d+))?)?\s*$'
)

# What VMware and qemu write; anything else in createType is damage (or a format we do not read).
CREATE_TYPES = frozenset(
    {
        "monolithicSparse",
        "monolithicFlat",
        "twoGbMaxExtentSparse",
        "twoGbMaxExtentFlat",
        "streamOptimized",
        "vmfs",
        "vmfsThin",
        "vmfsPreallocated",
        "vmfsEagerZeroedThick",
        "vmfsRaw",
        "vmfsRDM",
        "vmfsPassthroughRawDeviceMap",
        "vmfsSparse",
        "seSparse",
        "custom",
    }
)
KEY = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")
CID = re.compile(r"^[0-9a-fA-F]{1,8}$")


def descriptor_area_text(path: str, raw: bytes, offset: int) -> str:
    """The text of a descriptor area: up to its first NUL, as qemu reads it.

    What follows that NUL is ignored when the text before it ends a line: qemu rewrites the
    descriptor in place when it updates the CID (a random hex number of varying length) and leaves
    the tail of the longer earlier text behind its NUL. A NUL in the middle of a line is damage.
    """
    text, _, rest = raw.partition(b"\0")
    if rest.strip(b"\0") and not text.endswith(b"\n"):
        raise FormatError(path, "VMDK descriptor", offset + len(text), "a NUL byte inside a line: damaged")
    return text.decode("utf-8", errors="replace")


def parse_descriptor(path: str, text: str) -> dict[str, Any]:
    """Fields and extents of a descriptor. Strict: every line is a comment, an extent or ``key = value``,
    CID/parentCID are hex and createType is a known one -- a damaged descriptor is refused, not guessed at."""
    fields: dict[str, str] = {}
    extents: list[tuple[str, int, str, str | None, int]] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = EXTENT_LINE.match(stripped)
        if m:
            access, sectors, kind, name, off = m.groups()
            extents.append((access, int(sectors), kind, name, int(off or 0)))
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not KEY.match(key.strip()):
            raise FormatError(
                path, "VMDK descriptor", None, f"line {number} is not a comment, an extent or key=value: {line[:60]!r}"
            )
        fields[key.strip()] = value.strip().strip('"')
    if not extents:
        raise FormatError(path, "VMDK descriptor", None, "lists no extents")
    for key in ("CID", "parentCID"):
        if not CID.match(fields.get(key, "")):
            raise FormatError(path, "VMDK descriptor", None, f"{key} {fields.get(key)!r} is missing or not hex")
    if fields.get("createType") not in CREATE_TYPES:
        raise FormatError(path, "VMDK descriptor", None, f"createType {fields.get('createType')!r} is unknown")
    return {"fields": fields, "extents": extents}


def descriptor_text(create_type: str, sectors: int, extent_line: str, cid: int | None = None) -> str:
    cid = cid if cid is not None else uuid.uuid4().int & 0xFFFFFFFF
    total = sectors
    heads, spt = 255, 63
    cylinders = min(65535, max(1, total // (heads * spt)))
    return (
        "# Disk DescriptorFile\n"
        "version=1\n"
        f"CID={cid:08x}\n"
        "parentCID=ffffffff\n"
        f'createType="{create_type}"\n\n'
        "# Extent description\n"
        f"{extent_line}\n\n"
        "# The Disk Data Base\n#DDB\n\n"
        'ddb.virtualHWVersion = "4"\n'
        f'ddb.geometry.cylinders = "{cylinders}"\n'
        f'ddb.geometry.heads = "{heads}"\n'
        f'ddb.geometry.sectors = "{spt}"\n'
        'ddb.adapterType = "lsilogic"\n'
    )
