"""Sample Windows-like master images, built on the spot: hives from scratch, a PE stub, NTFS by libguestfs.

The demo's "source VM" and the test suite's fixtures. Not Windows: just enough
of its on-disk shape (partitions, NTFS, registry hives, a kernel's PE header)
for inspection, prepare and diagnostics to do their real work.

- ``empty_hive()``: the 8 KiB minimal regf (base block, one hbin with a root
  ``nk`` and its ``sk``) described in the reference doc §10; hivex, regipy and
  python-registry accept it.
- ``system_hive()``/``software_hive()``: that hive filled by Debian's hivex
  with what a Windows 10 / Server 2022 image holds for the values prepare
  touches (two control sets, VMware-built: VMware Tools on, Hyper-V storage
  drivers demand-start, a static route, RDP off).
- ``build_disks()``: one appliance launch writes every requested disk: MBR +
  NTFS, GPT + ESP + NTFS, and the refusal cases (hibernated, BitLocker, dirty
  hive, no Windows).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ = 1, 2, 3, 4, 7


def _sid(*parts: int) -> bytes:
    authority, *subs = parts
    tail = b"".join(struct.pack("<I", s) for s in subs)
    return struct.pack("<BB", 1, len(subs)) + authority.to_bytes(6, "big") + tail


def _security_descriptor() -> bytes:
    owner = _sid(5, 32, 544)  # BUILTIN\Administrators
    group = _sid(5, 18)  # SYSTEM
    aces = b""
    for sid in (group, owner):
        ace_body = struct.pack("<I", 0x000F003F) + sid
        aces += struct.pack("<BBH", 0, 0x03, 4 + len(ace_body)) + ace_body
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(aces), 2, 0) + aces
    header = 20
    return (
        struct.pack("<BBHIIII", 1, 0, 0x8004, header, header + len(owner), 0, header + len(owner) + len(group))
        + owner
        + group
        + acl
    )


def empty_hive(name: str = "ROOT") -> bytes:
    """A clean 8192-byte regf hive with an empty root key."""
    root_off = 0x20
    name_bytes = name.encode("ascii")
    nk = bytearray(0x4C + len(name_bytes))
    nk[0:2] = b"nk"
    struct.pack_into("<H", nk, 2, 0x2C)
    struct.pack_into("<I", nk, 0x1C, 0xFFFFFFFF)
    struct.pack_into("<I", nk, 0x20, 0xFFFFFFFF)
    struct.pack_into("<I", nk, 0x28, 0xFFFFFFFF)
    struct.pack_into("<I", nk, 0x30, 0xFFFFFFFF)
    struct.pack_into("<H", nk, 0x48, len(name_bytes))
    nk[0x4C:] = name_bytes
    nk_cell_size = -(-(4 + len(nk)) // 8) * 8
    sk_off = root_off + nk_cell_size
    struct.pack_into("<I", nk, 0x2C, sk_off)
    descriptor = _security_descriptor()
    sk = bytearray(0x14) + descriptor
    sk[0:2] = b"sk"
    struct.pack_into("<IIII", sk, 4, sk_off, sk_off, 1, len(descriptor))
    sk_cell_size = -(-(4 + len(sk)) // 8) * 8

    hbin = bytearray(4096)
    hbin[0:4] = b"hbin"
    struct.pack_into("<II", hbin, 4, 0, 4096)
    struct.pack_into("<i", hbin, root_off, -nk_cell_size)
    hbin[root_off + 4 : root_off + 4 + len(nk)] = nk
    struct.pack_into("<i", hbin, sk_off, -sk_cell_size)
    hbin[sk_off + 4 : sk_off + 4 + len(sk)] = sk
    free_off = sk_off + sk_cell_size
    struct.pack_into("<i", hbin, free_off, 4096 - free_off)

    base = bytearray(4096)
    base[0:4] = b"regf"
    struct.pack_into("<IIQIIIIIII", base, 4, 1, 1, 0, 1, 5, 0, 1, root_off, 4096, 1)
    checksum = 0
    for (word,) in struct.iter_unpack("<I", bytes(base[:0x1FC])):
        checksum ^= word
    checksum = {0xFFFFFFFF: 0xFFFFFFFE, 0: 1}.get(checksum, checksum)
    struct.pack_into("<I", base, 0x1FC, checksum)
    return bytes(base + hbin)


def _encode(kind: int, value: Any) -> bytes:
    if kind == REG_DWORD:
        return struct.pack("<I", value)
    if kind in (REG_SZ, REG_EXPAND_SZ):
        return (value + "\0").encode("utf-16-le")
    if kind == REG_MULTI_SZ:
        return ("".join(v + "\0" for v in value) + "\0").encode("utf-16-le")
    return bytes(value)


def fill_hive(path: Path, keys: dict[str, dict[str, tuple[int, Any]]]) -> None:
    """Create each key path (``A\\B\\C``) with its values, through Debian's hivex."""
    import hivex

    h = hivex.Hivex(str(path), write=True)
    for key, values in keys.items():
        node = h.root()
        for part in key.split("\\"):
            child = h.node_get_child(node, part)
            node = child if child else h.node_add_child(node, part)
        if values:
            h.node_set_values(node, [{"key": k, "t": t, "value": _encode(t, v)} for k, (t, v) in values.items()])
    h.commit(None)


def _control_set(n: int) -> dict[str, dict[str, tuple[int, Any]]]:
    cs = f"ControlSet00{n}"

    def service(start: int, path: str = "") -> dict[str, tuple[int, Any]]:
        return {"Start": (REG_DWORD, start), "Type": (REG_DWORD, 1), "ImagePath": (REG_EXPAND_SZ, path)}

    return {
        f"{cs}\\Services\\vmbus": service(3, r"System32\drivers\vmbus.sys"),
        f"{cs}\\Services\\storvsc": service(3, r"System32\drivers\storvsc.sys"),
        f"{cs}\\Services\\intelide": service(3, r"System32\drivers\intelide.sys"),
        f"{cs}\\Services\\atapi": service(3, r"System32\drivers\atapi.sys"),
        f"{cs}\\Services\\storflt": service(3, r"System32\drivers\vmstorfl.sys"),
        f"{cs}\\Services\\pvscsi": service(0, r"System32\drivers\pvscsi.sys"),
        f"{cs}\\Services\\VMTools": service(2, r'"C:\Program Files\VMware\VMware Tools\vmtoolsd.exe"'),
        f"{cs}\\Services\\Dhcp": service(2),
        f"{cs}\\Services\\TermService": service(3),
        f"{cs}\\Services\\partmgr\\Parameters": {"SanPolicy": (REG_DWORD, 2)},
        f"{cs}\\Services\\Tcpip\\Parameters\\PersistentRoutes": {"10.0.0.0,255.0.0.0,10.1.1.1,1": (REG_SZ, "")},
        f"{cs}\\Services\\Tcpip\\Parameters\\Interfaces\\{{5C1E2A3B-0000-4000-8000-000000000001}}": {
            "EnableDHCP": (REG_DWORD, 0),
            "IPAddress": (REG_MULTI_SZ, ["10.20.30.40"]),
            "SubnetMask": (REG_MULTI_SZ, ["255.255.255.0"]),
        },
        f"{cs}\\Services\\Tcpip\\Parameters\\Interfaces\\{{5C1E2A3B-0000-4000-8000-000000000002}}": {
            "EnableDHCP": (REG_DWORD, 1),
        },
        f"{cs}\\Control\\TimeZoneInformation": {"RealTimeIsUniversal": (REG_DWORD, 0)},
        f"{cs}\\Control\\Terminal Server": {"fDenyTSConnections": (REG_DWORD, 1)},
        f"{cs}\\Control\\Terminal Server\\WinStations\\RDP-Tcp": {"PortNumber": (REG_DWORD, 3389)},
        f"{cs}\\Control\\Session Manager\\Power": {"HiberbootEnabled": (REG_DWORD, 0)},
        f"{cs}\\Control\\CrashControl": {"CrashDumpEnabled": (REG_DWORD, 7)},
    }


def system_hive(path: Path, fast_startup: bool = False) -> Path:
    path.write_bytes(empty_hive("SYSTEM"))
    keys = {"Select": {"Current": (REG_DWORD, 1), "Default": (REG_DWORD, 1), "LastKnownGood": (REG_DWORD, 2)}}
    keys.update(_control_set(1))
    keys.update(_control_set(2))
    keys["ControlSet001\\Control\\ComputerName\\ComputerName"] = {"ComputerName": (REG_SZ, "GOLD-W11")}
    if fast_startup:
        keys["ControlSet001\\Control\\Session Manager\\Power"] = {"HiberbootEnabled": (REG_DWORD, 1)}
    fill_hive(path, keys)
    return path


def software_hive(path: Path) -> Path:
    path.write_bytes(empty_hive("SOFTWARE"))
    uninstall = "Microsoft\\Windows\\CurrentVersion\\Uninstall"
    fill_hive(
        path,
        {
            "Microsoft\\Windows NT\\CurrentVersion": {
                "ProductName": (REG_SZ, "Windows Server 2022 Datacenter"),
                "CurrentMajorVersionNumber": (REG_DWORD, 10),
                "CurrentMinorVersionNumber": (REG_DWORD, 0),
                "CurrentBuildNumber": (REG_SZ, "20348"),
                "CurrentVersion": (REG_SZ, "6.3"),
                "InstallationType": (REG_SZ, "Server"),
                "EditionID": (REG_SZ, "ServerDatacenter"),
            },
            f"{uninstall}\\{{VMWARE-TOOLS}}": {
                "DisplayName": (REG_SZ, "VMware Tools"),
                "DisplayVersion": (REG_SZ, "12.3.0"),
                "UninstallString": (REG_EXPAND_SZ, "MsiExec.exe /I{VMWARE-TOOLS}"),
            },
            f"{uninstall}\\{{CITRIX-VDA}}": {
                "DisplayName": (REG_SZ, "Citrix Virtual Delivery Agent 2402"),
                "DisplayVersion": (REG_SZ, "7.41.0.17"),
            },
            "Citrix\\VirtualDesktopAgent": {"ListOfDDCs": (REG_SZ, "ddc1.corp.example ddc2.corp.example")},
        },
    )
    return path


def pe_stub() -> bytes:
    """A PE32+ x86-64 header, enough for libguestfs to call the OS 64-bit Windows."""
    dos = bytearray(64)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 64)
    coff = struct.pack("<HHIIIHH", 0x8664, 0, 0, 0, 0, 240, 0x0022)
    optional = bytearray(240)
    struct.pack_into("<H", optional, 0, 0x20B)
    struct.pack_into("<H", optional, 68, 3)
    return bytes(dos) + b"PE\0\0" + coff + bytes(optional)


KINDS = ("mbr", "gpt", "hibernated", "bitlocker", "dirty", "nowindows", "faststartup")


def build_disks(directory: Path, kinds: tuple[str, ...] = KINDS, size: int = 96 * MiB) -> dict[str, Path]:
    """Raw disk images, one per kind, built in a single appliance launch."""
    import guestfs

    work = directory / "hives"
    work.mkdir(parents=True, exist_ok=True)
    system, fast, software = (
        system_hive(work / "SYSTEM"),
        system_hive(work / "SYSTEM-fast", fast_startup=True),
        software_hive(work / "SOFTWARE"),
    )
    dirty = work / "SYSTEM-dirty"
    data = bytearray(system.read_bytes())
    struct.pack_into("<I", data, 4, struct.unpack_from("<I", data, 4)[0] + 1)  # primary != secondary
    dirty.write_bytes(bytes(data))
    stub = work / "cmd.exe"
    stub.write_bytes(pe_stub())

    disks = {kind: directory / f"{kind}.img" for kind in kinds}
    g = guestfs.GuestFS(python_return_dict=True)
    try:
        g.set_backend("direct")
        g.set_backend_settings(["force_tcg"])
        for path in disks.values():
            g.disk_create(str(path), "raw", size)
            g.add_drive_opts(str(path), format="raw", readonly=False)
        g.launch()
        for index, kind in enumerate(kinds):
            device = f"/dev/sd{chr(ord('a') + index)}"
            if kind == "gpt":
                g.part_init(device, "gpt")
                g.part_add(device, "p", 2048, 2048 + 100 * 2048 // 10 - 1)  # a 10 MiB ESP
                g.part_add(device, "p", 2048 + 100 * 2048 // 10, -34)
                g.part_set_gpt_type(device, 1, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
                g.mkfs("vfat", f"{device}1")
                system_part = f"{device}2"
            else:
                g.part_init(device, "mbr")
                g.part_add(device, "p", 2048, -1)
                g.part_set_mbr_id(device, 1, 0x07)
                g.part_set_bootable(device, 1, True)
                system_part = f"{device}1"
            g.mkfs("ntfs", system_part)
            if kind == "bitlocker":
                g.pwrite_device(system_part, b"-FVE-FS-", 3)  # what a BitLocker volume's boot sector says
                continue
            g.mount(system_part, "/")
            if kind != "nowindows":
                g.mkdir_p("/Windows/System32/config")
                g.mkdir_p("/Windows/System32/drivers")
                g.upload(str(stub), "/Windows/System32/cmd.exe")
                hive = {"dirty": dirty, "faststartup": fast}.get(kind, system)
                g.upload(str(hive), "/Windows/System32/config/SYSTEM")
                g.upload(str(software), "/Windows/System32/config/SOFTWARE")
                for driver in ("vmbus", "storvsc", "intelide", "atapi", "vmstorfl", "pciidex", "ataport"):
                    g.write(f"/Windows/System32/drivers/{driver}.sys", b"MZ driver stub")
            else:
                g.mkdir_p("/Data")
                g.write("/Data/readme.txt", b"a data disk")
            if kind == "hibernated":
                g.write("/hiberfil.sys", b"HIBR" + bytes(4092))
            g.umount_all()
        g.shutdown()
    finally:
        g.close()
    return disks
