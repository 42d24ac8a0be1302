"""What prepare must know about an image before it writes anything, and the states it refuses.

Read in the launched appliance, read-only: the OS (libguestfs inspection plus
the SOFTWARE hive), control sets, firmware and partition style, hibernation
and Fast Startup, BitLocker (a volume boot sector saying ``-FVE-FS-``), dirty
hives (regf primary sequence != secondary: changes still in .LOG files that a
hivex commit would silently discard), installed components, driver files.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass, field
from typing import Any

from imageport.errors import GuestRefused
from imageport.guest.errors import translate_guestfs_errors
from imageport.guest.registry import OpenHive

ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
HIBERNATION_MAGICS = (b"hibr", b"HIBR", b"wake", b"WAKE", b"RSTR")
HYPERV_DRIVERS = ("vmbus", "storvsc", "intelide", "atapi", "vmstorfl", "pciidex", "ataport")
VSPHERE_DRIVERS = ("pvscsi", "lsi_sas", "lsi_scsi")  # VMware's storage controllers (PVSCSI, LSI Logic)
COMPONENTS = {  # Uninstall DisplayName prefix -> component
    "Citrix Virtual Delivery Agent": "vda",
    "Citrix Provisioning Target Device": "pvs_target_device",
    "Citrix MCS IODriver": "mcsio",
    "Citrix Machine Identity Service Agent": "misa",
    "VMware Tools": "vmware_tools",
    "Windows Azure VM Agent": "azure_vm_agent",
}
UNINSTALL = "Microsoft\\Windows\\CurrentVersion\\Uninstall"


@dataclass
class GuestFacts:
    root: str  # the inspected OS root device
    product: str
    major: int
    minor: int
    build: str
    arch: str
    installation_type: str
    systemroot: str  # path inside the guest, e.g. /Windows
    system_hive: str
    software_hive: str
    control_sets: list[str]
    current_control_set: str
    partition_style: str  # "mbr" or "gpt"
    firmware: str  # "bios" or "uefi"
    hibernated: bool
    fast_startup: bool
    bitlocker: list[str]
    dirty_hives: list[str]
    components: dict[str, str] = field(default_factory=dict)  # component -> version
    driver_files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bitlocker_volumes(g: Any) -> list[str]:
    found = []
    for device in g.list_partitions():
        with translate_guestfs_errors(f"read the boot sector of {device}"):
            if g.pread_device(device, 11, 0)[3:11] == b"-FVE-FS-":
                found.append(device)
    return found


def _is_dirty(g: Any, path: str) -> bool:
    header = g.pread(path, 12, 0)
    if header[:4] != b"regf":
        raise GuestRefused(f"{path} is not a registry hive (no regf signature)")
    primary, secondary = struct.unpack_from("<II", header, 4)
    return primary != secondary


def _dirty_message(dirty: list[str]) -> str:
    return (
        f"dirty registry hive(s) {', '.join(dirty)}: changes still sit in the .LOG files and a commit "
        "would discard them. Boot the source once and shut it down cleanly, then export again"
    )


def _dirty_hives_anywhere(g: Any) -> list[str]:
    """Dirty SYSTEM/SOFTWARE hives on any NTFS volume (without libguestfs inspection)."""
    found = []
    g.umount_all()  # a failed inspection can leave the volume mounted
    for device, fstype in g.list_filesystems().items():
        if fstype != "ntfs":
            continue
        try:
            g.mount_ro(device, "/")
            for name in ("SYSTEM", "SOFTWARE"):
                path = g.case_sensitive_path(f"/Windows/System32/config/{name}")
                if g.is_file(path) and _is_dirty(g, path):
                    found.append(f"{device}:{path}")
        except RuntimeError:
            pass  # not a Windows volume
        finally:
            g.umount_all()
    return found


def gather(g: Any, refuse: bool = True) -> GuestFacts:
    """Inspect the launched image, its Windows volume mounted read-only at /.

    ``refuse`` raises ``GuestRefused`` for the states prepare must not touch; diagnostics reads
    them as facts instead.
    """
    with translate_guestfs_errors("inspect the image"):
        bitlocker = _bitlocker_volumes(g)
    try:
        roots = g.inspect_os()
    except RuntimeError:
        # libguestfs's own inspection opens the hives with hivex, which refuses a dirty one:
        # find out whether that is why, to say so clearly.
        dirty = _dirty_hives_anywhere(g)
        if dirty:
            raise GuestRefused(_dirty_message(dirty)) from None
        raise
    if not roots:
        if bitlocker:
            raise GuestRefused(
                f"the volume on {', '.join(bitlocker)} is BitLocker-encrypted; decrypt it (manage-bde -off) "
                "on the source before porting"
            )
        raise GuestRefused("no operating system found: this is not a system disk (a data disk, or not Windows)")
    root = roots[0]
    with translate_guestfs_errors("inspect the image"):
        os_type = g.inspect_get_type(root)
        major, minor = g.inspect_get_major_version(root), g.inspect_get_minor_version(root)
        arch = g.inspect_get_arch(root)
        if os_type != "windows" or major < 10 or arch != "x86_64":
            raise GuestRefused(
                f"unsupported OS: {os_type} {major}.{minor} {arch}; prepare handles 64-bit Windows 10 / "
                "Server 2016 and later"
            )
        systemroot = g.inspect_get_windows_systemroot(root)
        g.mount_ro(root, "/")  # read-only until nothing is refused: a rw NTFS mount alone writes to the volume
        system_hive = g.case_sensitive_path(f"{systemroot}/System32/config/SYSTEM")
        software_hive = g.case_sensitive_path(f"{systemroot}/System32/config/SOFTWARE")
        hiberfil = None
        for name in g.ls("/"):
            if name.lower() == "hiberfil.sys":
                hiberfil = f"/{name}"
        hibernated = bool(hiberfil) and g.filesize(hiberfil) >= 4 and g.pread(hiberfil, 4, 0) in HIBERNATION_MAGICS
        dirty = [p for p in (system_hive, software_hive) if _is_dirty(g, p)]
        device = root.rstrip("0123456789")
        style = "gpt" if g.part_get_parttype(device) == "gpt" else "mbr"
        esp = style == "gpt" and any(
            g.part_get_gpt_type(device, p["part_num"]).upper() == ESP_GUID for p in g.part_list(device)
        )
        drivers_dir = g.case_sensitive_path(f"{systemroot}/System32/drivers")
        present = {n.lower() for n in g.ls(drivers_dir)} if g.is_dir(drivers_dir) else set()

    if hibernated and refuse:
        raise GuestRefused(
            f"{hiberfil} holds a hibernated session: writing the volume would lose it (and Windows would "
            "resume a stale state). Boot the source, shut it down fully (shutdown /s /t 0), then export again"
        )
    if dirty and refuse:
        raise GuestRefused(_dirty_message(dirty))
    hive = OpenHive(g, system_hive, write=False)
    try:
        current = hive.get("Select", "Current")
        control_sets = sorted(k for k in hive.subkeys() if k.lower().startswith("controlset"))
        current_set = f"ControlSet{int(current.value):03d}" if current else (control_sets[0] if control_sets else "")
        power = hive.get(f"{current_set}\\Control\\Session Manager\\Power", "HiberbootEnabled")
    finally:
        hive.close(commit=False)
    fast_startup = bool(power and power.value == 1)
    if fast_startup and refuse:
        raise GuestRefused(
            "Fast Startup is on (HiberbootEnabled=1): a shutdown leaves the volume hibernated. Turn it off "
            "(powercfg /h off) on the source, shut down, then export again"
        )
    hive = OpenHive(g, software_hive, write=False)
    try:
        version = hive.values("Microsoft\\Windows NT\\CurrentVersion")
        components = {}
        for product in hive.subkeys(UNINSTALL):
            values = hive.values(f"{UNINSTALL}\\{product}")
            name = str(getattr(values.get("DisplayName"), "value", ""))
            for prefix, component in COMPONENTS.items():
                if name.startswith(prefix):
                    components[component] = str(getattr(values.get("DisplayVersion"), "value", "?"))
    finally:
        hive.close(commit=False)
    return GuestFacts(
        root=root,
        product=str(getattr(version.get("ProductName"), "value", "Windows")),
        major=major,
        minor=minor,
        build=str(getattr(version.get("CurrentBuildNumber"), "value", "")),
        arch=arch,
        installation_type=str(getattr(version.get("InstallationType"), "value", "")),
        systemroot=systemroot,
        system_hive=system_hive,
        software_hive=software_hive,
        control_sets=control_sets,
        current_control_set=current_set,
        partition_style=style,
        firmware="uefi" if esp else "bios",
        hibernated=hibernated,
        fast_startup=fast_startup,
        bitlocker=bitlocker,
        dirty_hives=dirty,
        components=components,
        driver_files=sorted(d for d in HYPERV_DRIVERS + VSPHERE_DRIVERS if f"{d}.sys" in present),
    )
