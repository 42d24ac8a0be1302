"""What Prism Central says about VMs: their disks (bus type and index), power state, firmware, recovery points.

``find_vm`` accepts a VM's extId (a UUID) or its name (which must be unique: Prism does not make it so).
A disk is named ``scsi.0`` / ``sata.1`` / ``ide.0`` / ``pci.0`` (bus type and index, as the VM's
``diskAddress`` says) or by its own ``diskExtId``; default: the first disk in bus order.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from imageport.errors import InputError, PlatformNotFound
from imageport.platforms.ahv.errors import translate_ahv_errors
from imageport.platforms.ahv.session import AhvSession

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
BUS_ORDER = ("scsi", "sata", "ide", "pci", "spapr")
PAGE = 100  # the v4 list limit Prism allows per page


@dataclass
class AhvDisk:
    label: str  # scsi.0
    disk_ext_id: str
    bus: str
    index: int
    capacity_bytes: int


@dataclass
class AhvVm:
    ext_id: str
    name: str
    power_state: str
    firmware: str  # bios (LegacyBoot) or uefi (UefiBoot)
    secure_boot: bool
    disks: list[AhvDisk] = field(default_factory=list)
    recovery_points: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _firmware(boot: Any) -> tuple[str, bool]:
    kind = getattr(boot, "_object_type", "") or type(boot).__name__
    if kind.endswith("UefiBoot"):
        return "uefi", bool(getattr(boot, "is_secure_boot_enabled", False))
    return "bios", False  # LegacyBoot, and a VM that states none boots legacy BIOS


def _disks(vm: Any) -> list[AhvDisk]:
    found = []
    for disk in vm.disks or []:
        backing, address = disk.backing_info, disk.disk_address
        if backing is None or not getattr(backing, "disk_ext_id", None) or address is None:
            continue  # a volume-group reference or an empty slot: no VM disk to export
        bus = str(address.bus_type).lower()
        found.append(AhvDisk(f"{bus}.{address.index}", str(backing.disk_ext_id), bus, int(address.index or 0),
                             int(backing.disk_size_bytes or 0)))  # fmt: skip
    return sorted(found, key=lambda d: (BUS_ORDER.index(d.bus) if d.bus in BUS_ORDER else 99, d.index))


def describe(vm: Any, recovery_points: list[str] | None = None) -> AhvVm:
    firmware, secure = _firmware(vm.boot_config)
    return AhvVm(str(vm.ext_id), str(vm.name), str(vm.power_state or "UNDETERMINED"), firmware, secure,
                 _disks(vm), recovery_points or [])  # fmt: skip


def list_all(list_page: Any, what: str) -> list[Any]:
    items: list[Any] = []
    page = 0
    while True:
        with translate_ahv_errors(what):
            response = list_page(_page=page, _limit=PAGE)
        batch = list(response.data or [])
        items += batch
        total = getattr(response.metadata, "total_available_results", None)
        if len(batch) < PAGE or (total is not None and len(items) >= total):
            return items
        page += 1


def recovery_points(session: AhvSession, vm_ext_id: str | None = None) -> dict[str, list[str]]:
    """Each VM's recovery points (names, else extIds), by VM extId."""
    api = session.recovery_points_api()
    query = f"vmExtId eq '{vm_ext_id}'" if vm_ext_id else None
    points = list_all(lambda **page: api.list_vm_recovery_points(_filter=query, **page),
                  f"list recovery points on {session.display}")  # fmt: skip
    by_vm: dict[str, list[str]] = {}
    for point in points:
        by_vm.setdefault(str(point.vm_ext_id), []).append(str(point.name or point.ext_id))
    return by_vm


def list_vms(session: AhvSession) -> list[AhvVm]:
    api = session.vms_api()
    vms = list_all(api.list_vms, f"list VMs on {session.display}")
    points = recovery_points(session)
    return [describe(vm, points.get(str(vm.ext_id))) for vm in vms]


def find_vm(session: AhvSession, ident: str) -> AhvVm:
    """A VM by extId or by its (unique) name."""
    api = session.vms_api()
    if UUID.match(ident):
        with translate_ahv_errors(f"find VM {ident} on {session.display}"):
            vm = api.get_vm_by_id(ident).data
    else:
        quoted = ident.replace("'", "''")
        matches = list_all(lambda **page: api.list_vms(_filter=f"name eq '{quoted}'", **page),
                       f"find VM {ident!r} on {session.display}")  # fmt: skip
        matches = [m for m in matches if m.name == ident]
        if not matches:
            raise PlatformNotFound(f"{session.display}: no VM named {ident!r}")
        if len(matches) > 1:
            ids = ", ".join(str(m.ext_id) for m in matches)
            raise InputError(f"{session.display}: {len(matches)} VMs are named {ident!r} ({ids}): name one by extId")
        vm = matches[0]
    return describe(vm, recovery_points(session, str(vm.ext_id)).get(str(vm.ext_id)))


def select_disk(vm: AhvVm, disk: str | None) -> AhvDisk:
    """The disk ``disk`` names (``scsi.0`` or a diskExtId); default the first."""
    if not vm.disks:
        raise PlatformNotFound(f"VM {vm.name} has no disk to export")
    if disk is None:
        return vm.disks[0]
    for candidate in vm.disks:
        if disk.lower() == candidate.label or disk == candidate.disk_ext_id:
            return candidate
    names = ", ".join(d.label for d in vm.disks)
    raise PlatformNotFound(f"VM {vm.name} has no disk {disk!r} (it has {names})")
