"""The partition style from a disk's first sectors, on every container qemu-img writes, and the limits the
checks before a port apply with it (imageport/preflight/limits.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageport.disks.detect import open_disk
from imageport.disks.partitions import PartitionStyle, partition_style
from imageport.models import HyperVGeneration, ProvisioningType, TargetPlatform
from imageport.preflight.limits import firmware_problem, size_problems
from tests.core.disks.images import MiB, make_partitioned, qemu_convert

CONTAINERS = ("raw", "vhd-dynamic", "vhdx-dynamic", "vmdk-stream")


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("partitions")
    made = {}
    for label in ("dos", "gpt"):
        raw = make_partitioned(root / f"{label}.raw", 8 * MiB, label)
        for kind in CONTAINERS:
            made[label, kind] = raw if kind == "raw" else qemu_convert(raw, root / f"{label}.{kind}", kind)
    return made


@pytest.mark.parametrize("kind", CONTAINERS)
@pytest.mark.parametrize(("label", "style"), [("dos", PartitionStyle.MBR), ("gpt", PartitionStyle.GPT)])
def test_style_is_read_through_the_disk_reader_of_every_container(disks, kind, label, style) -> None:  # type: ignore[no-untyped-def]
    with open_disk(disks[label, kind]) as reader:
        assert partition_style(reader) is style


def test_a_blank_disk_or_a_protective_mbr_without_its_gpt_has_no_style(tmp_path: Path, disks) -> None:  # type: ignore[no-untyped-def]
    blank = tmp_path / "blank.raw"
    blank.write_bytes(bytes(4 * MiB))
    with open_disk(blank) as reader:
        assert partition_style(reader) is PartitionStyle.NONE
    broken = tmp_path / "broken.raw"
    broken.write_bytes(disks["gpt", "raw"].read_bytes())
    with open(broken, "r+b") as f:
        f.seek(512)
        f.write(b"NOT PART")  # the GPT header's signature gone: a protective MBR alone
    with open_disk(broken) as reader:
        assert partition_style(reader) is PartitionStyle.NONE
    assert PartitionStyle.GPT.firmware == "uefi" and PartitionStyle.MBR.firmware == "bios"


def test_firmware_against_generation() -> None:
    azure, mcs = TargetPlatform.AZURE, ProvisioningType.MCS
    bios = firmware_problem(azure, HyperVGeneration.V2, "bios", mcs, "the source VM 'gold'")
    assert bios is not None and bios.startswith("V2 needs a UEFI/GPT disk; the source VM 'gold' boots BIOS")
    uefi = firmware_problem(azure, HyperVGeneration.V1, "efi", mcs, "the source VM 'gold'")  # vSphere's word
    assert uefi is not None and uefi.startswith("V1 needs a BIOS/MBR disk; the source VM 'gold' boots UEFI")
    assert firmware_problem(azure, HyperVGeneration.V1, "bios", mcs, "x") is None
    assert firmware_problem(azure, HyperVGeneration.V2, "uefi", mcs, "x") is None
    assert firmware_problem(TargetPlatform.LOCAL, HyperVGeneration.V2, "bios", mcs, "x") is None
    assert firmware_problem(azure, HyperVGeneration.V2, None, mcs, "x") is None  # unknown: nothing to say
    pvs = firmware_problem(azure, HyperVGeneration.V1, "bios", ProvisioningType.PVS, "x")
    assert pvs is not None and "PVS on Azure boots Gen2/UEFI only" in pvs


def test_size_limits() -> None:
    tib = 2**40
    assert size_problems(30 * MiB, PartitionStyle.MBR, HyperVGeneration.V1, "d") == []
    (small,) = size_problems(8 * MiB, None, HyperVGeneration.V2, "d")
    assert "an Azure direct upload takes 20 MiB to 32 TiB" in small
    (big,) = size_problems(33 * tib, None, HyperVGeneration.V2, "d")
    assert "32 TiB" in big
    (mbr,) = size_problems(3 * tib, PartitionStyle.MBR, None, "d")
    assert "MBR addresses at most 2 TiB" in mbr
    assert size_problems(3 * tib, PartitionStyle.GPT, None, "d") == []
    (gen1,) = size_problems(3 * tib, PartitionStyle.GPT, HyperVGeneration.V1, "d")
    assert "Gen1 (V1) OS disk is at most 2 TiB" in gen1
