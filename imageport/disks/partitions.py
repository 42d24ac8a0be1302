"""The partition style of a disk, from its first sectors: GPT (UEFI boot) or a classic MBR (BIOS boot).

Read through any ``DiskReader``, so it works on every container (raw, VHD, VHDX, VMDK) and every store
(local, SMB, a page blob) without reading more than the first 8 KiB:

- GPT: a *protective* MBR (partition type ``0xEE`` in one of the four entries, boot signature
  ``55 AA``) and the header ``EFI PART`` at LBA 1 -- byte 512, or 4096 on a 4K-sector disk;
- MBR: the boot signature and at least one non-empty partition entry, none of type ``0xEE``;
- none: neither (a blank disk, or a file system written on the whole disk).

An MBR addresses at most 2^32 sectors of 512 bytes: 2 TiB (``MBR_MAX_BYTES``).
"""

from __future__ import annotations

from typing import Protocol

from imageport.compat import StrEnum

SECTOR = 512
BOOT_SIGNATURE = b"\x55\xaa"
GPT_SIGNATURE = b"EFI PART"
PROTECTIVE = 0xEE
TABLE_OFFSET = 446  # four 16-byte entries; the type byte is the fifth of each
MBR_MAX_BYTES = 2**32 * SECTOR


class PartitionStyle(StrEnum):
    GPT = "gpt"
    MBR = "mbr"
    NONE = "none"

    @property
    def firmware(self) -> str | None:
        """The firmware that boots this style, in the guest's terms (``guest/facts.py``): uefi or bios."""
        return {PartitionStyle.GPT: "uefi", PartitionStyle.MBR: "bios"}.get(self)


class SectorReader(Protocol):
    """What is read here: any ``DiskReader``."""

    virtual_size: int

    def read(self, offset: int, length: int) -> bytes: ...


def partition_style(reader: SectorReader) -> PartitionStyle:
    """The partition style of the disk ``reader`` reads."""
    size = reader.virtual_size
    if size < 2 * SECTOR:
        return PartitionStyle.NONE
    mbr = reader.read(0, SECTOR)
    if mbr[510:512] != BOOT_SIGNATURE:
        return PartitionStyle.NONE
    types = [mbr[TABLE_OFFSET + 16 * i + 4] for i in range(4)]
    if PROTECTIVE in types:
        for lba1 in (SECTOR, 4096):
            if lba1 + len(GPT_SIGNATURE) <= size and reader.read(lba1, len(GPT_SIGNATURE)) == GPT_SIGNATURE:
                return PartitionStyle.GPT
        return PartitionStyle.NONE  # a protective MBR without its GPT: neither firmware boots it
    return PartitionStyle.MBR if any(types) else PartitionStyle.NONE
