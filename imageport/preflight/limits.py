"""Platform rules a check can apply without a connection: boot firmware and sizes.

- boot: ``guest.plan.boot_refusal`` (the rule prepare applies inside the image), here applied to what
  the source says before anything moves -- the vSphere VM's ``config.firmware`` or the disk's
  partition style (``disks/partitions.py``);
- Azure direct upload: the disk is created with ``uploadSizeBytes`` = the image as a fixed VHD
  (whole MiB) + its 512-byte footer, which must lie in 20 MiB + 512 .. 32 TiB + 512;
- an MBR disk addresses at most 2 TiB, and so does an Azure Gen1 (V1) OS disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from imageport.disks.convert import output_size
from imageport.disks.partitions import MBR_MAX_BYTES, PartitionStyle
from imageport.guest.plan import boot_refusal
from imageport.models import DiskFormat, HyperVGeneration, ProvisioningType, TargetPlatform

MiB, TiB = 2**20, 2**40
FOOTER = 512
AZURE_UPLOAD_MIN = 20 * MiB + FOOTER
AZURE_UPLOAD_MAX = 32 * TiB + FOOTER
GEN1_OS_DISK_MAX = 2 * TiB
FIRMWARE_NAMES = {"bios": "BIOS", "uefi": "UEFI", "efi": "UEFI"}
EXISTS = "exists"  # what a platform says of an output that exists and has no state to tell


@dataclass(frozen=True)
class SourceFacts:
    """What a platform says of a source without moving data (the checks compare it with the targets)."""

    described: str  # "the source VM 'gold'", for messages
    firmware: str | None  # bios / uefi (None: unknown)
    style: PartitionStyle | None  # read from the disk's first sectors, where it was
    virtual_size: int | None


def firmware_problem(
    platform: TargetPlatform,
    generation: HyperVGeneration,
    firmware: str | None,
    provisioning: ProvisioningType,
    source: str,
) -> str | None:
    """Why ``source``, which boots ``firmware`` (bios, uefi, or vSphere's efi), cannot boot on the target."""
    if firmware is None:
        return None
    firmware = "uefi" if firmware == "efi" else firmware
    reason = boot_refusal(platform, generation, firmware, provisioning)
    if reason is None:
        return None
    style = "UEFI/GPT" if generation is HyperVGeneration.V2 else "BIOS/MBR"
    return f"{generation.value} needs a {style} disk; {source} boots {FIRMWARE_NAMES[firmware]} ({reason})"


def size_problems(virtual_size: int, style: PartitionStyle | None, generation: HyperVGeneration | None,
                  source: str) -> list[str]:  # fmt: skip
    """What an Azure upload of a ``virtual_size`` disk would refuse (``generation`` None: not an Azure target)."""
    problems = []
    if style is PartitionStyle.MBR and virtual_size > MBR_MAX_BYTES:
        problems.append(f"{source} is an MBR disk of {virtual_size:,} bytes; MBR addresses at most 2 TiB")
    if generation is None:
        return problems
    upload = output_size(DiskFormat.VHD, virtual_size) + FOOTER
    if not AZURE_UPLOAD_MIN <= upload <= AZURE_UPLOAD_MAX:
        problems.append(
            f"{source} is {virtual_size:,} bytes; an Azure direct upload takes 20 MiB to 32 TiB "
            f"(uploadSizeBytes {upload:,})"
        )
    if generation is HyperVGeneration.V1 and virtual_size > GEN1_OS_DISK_MAX:
        problems.append(f"{source} is {virtual_size:,} bytes; an Azure Gen1 (V1) OS disk is at most 2 TiB")
    return problems
