"""First-boot actions installed offline: what needs a running Windows runs once at the next boot.

Mechanism: a *local Group Policy startup script* (reference §4, the Azure
Site Recovery flow). It needs no service wrapper binary, runs as SYSTEM at
boot, and is registered entirely by offline registry writes:
``SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Group Policy\\Scripts\\Startup\\0``
and the same under ``...\\Group Policy\\State\\Machine\\Scripts\\Startup\\0``,
each with subkey ``0`` naming the script.

The runner ``C:\\ProgramData\\imageport\\firstboot\\run.cmd`` executes each
``NN-name.cmd`` in order, appends its output and exit code to ``firstboot.log``
(which diagnostics reads later), moves it to ``done\\``, and, once none are
left, removes its own registration. Actions:

- ``XenDesktopVdaSetup.exe /reconfigure`` with only ``/controllers``,
  ``/portnumber``, ``/enable_hdx_ports`` (the switches Citrix allows);
- installers staged into the image (PVS target device, MCS I/O driver, MCS
  security agent; chosen and checked by ``guest.installers``): ``.msi`` through
  ``msiexec /i … /qn /norestart``, ``.exe`` with ``/quiet /norestart``
  (decision: vendors' silent switches beyond these are not assumed). ``install``
  stages one only when the image's Uninstall keys lack the component; ``force``
  stages it whatever is installed (the installer then repairs/reinstalls);
- domain unjoin (``Remove-Computer -WorkgroupName WORKGROUP -Force``);
- chkdsk (scheduled for the boot after) and defrag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imageport.guest.registry import REG_DWORD, REG_QWORD, REG_SZ, Value
from imageport.models import InstallType, PrepareOptions, ReconfigureSwitch
from imageport.models.installers import INSTALLED_AS, StagedInstaller

GUEST_DIR = "/ProgramData/imageport/firstboot"
WINDOWS_DIR = "C:\\ProgramData\\imageport\\firstboot"
STAGED_DIR = "/ProgramData/imageport/installers"
WINDOWS_STAGED = "C:\\ProgramData\\imageport\\installers"
GP = "Microsoft\\Windows\\CurrentVersion\\Group Policy"
SCRIPT_KEYS = (f"{GP}\\Scripts\\Startup\\0", f"{GP}\\State\\Machine\\Scripts\\Startup\\0")
VDA_SETUP = "%ProgramFiles%\\Citrix\\XenDesktopVdaSetup\\XenDesktopVdaSetup.exe"
LOG = f"{WINDOWS_DIR}\\firstboot.log"
# The completion marker: the runner's last line, written once every action has run and the script is unregistered.
DONE = "all actions done"
# The runner's own lines: "[DATE TIME] start NAME", "[DATE TIME] end NAME exit CODE".
_STARTED = re.compile(r"^\[[^]]*\] start (\S+)\s*$")
_ENDED = re.compile(r"^\[[^]]*\] end (\S+) exit (-?\d+)\s*$")


@dataclass(frozen=True)
class Action:
    name: str  # file name, e.g. 10-reconfigure.cmd
    script: str  # cmd lines (CRLF added when written)
    why: str
    installer: StagedInstaller | None = None  # the installer this action runs, copied into the image beforehand


def runner() -> str:
    return "\r\n".join(
        [
            "@echo off",
            "rem imageport first-boot runner: each action once, logged, then unregistered",
            # Delayed expansion: inside the loop's block %errorlevel%/%time% would be expanded once, at parse time.
            "setlocal EnableDelayedExpansion",
            f"set DIR={WINDOWS_DIR}",
            'if not exist "%DIR%\\done" mkdir "%DIR%\\done"',
            'for %%F in ("%DIR%\\??-*.cmd") do (',
            '  echo [!date! !time!] start %%~nxF>>"%DIR%\\firstboot.log"',
            '  call "%%F" >>"%DIR%\\firstboot.log" 2>&1',
            '  echo [!date! !time!] end %%~nxF exit !errorlevel!>>"%DIR%\\firstboot.log"',
            '  move /y "%%F" "%DIR%\\done\\" >nul',
            ")",
            *(f'reg delete "HKLM\\SOFTWARE\\{key.rsplit(chr(92), 1)[0]}" /f >nul 2>&1' for key in SCRIPT_KEYS),
            f'echo [%date% %time%] {DONE}; startup script removed>>"%DIR%\\firstboot.log"',
            "",
        ]
    )


def _installer_command(name: str, force: bool) -> str:
    path = f"{WINDOWS_STAGED}\\{name}"
    if name.lower().endswith(".msi"):
        # A reinstall from the package: REINSTALL=ALL with REINSTALLMODE vomus (Windows Installer's documented
        # "reinstall every feature, all files, rewrite registry and shortcuts"); a plain /i only installs.
        reinstall = " REINSTALL=ALL REINSTALLMODE=vomus" if force else ""
        return f'msiexec /i "{path}"{reinstall} /qn /norestart /l*v "{WINDOWS_DIR}\\{name}.log"'
    return f'"{path}" /quiet /norestart'


def actions(
    options: PrepareOptions, installers: list[StagedInstaller], installed: dict[str, str]
) -> tuple[list[Action], list[str]]:
    """The first-boot actions an option set asks for, in the order they must run, and why any installer
    asked for is not staged. ``installers`` are the checked installers (``guest.installers``);
    ``installed`` the image's components and versions (``GuestFacts.components``)."""
    found: list[Action] = []
    notes: list[str] = []
    if options.xd_reconfigure:
        switches = []
        for parameter in options.xd_reconfigure:
            if parameter.name is ReconfigureSwitch.ENABLE_HDX_PORTS:
                switches.append(parameter.name.value)
            else:
                switches.append(f'{parameter.name.value} "{parameter.value}"')
        found.append(Action("10-vda-reconfigure.cmd", f'"{VDA_SETUP}" /reconfigure {" ".join(switches)}', "VDA"))
    for index, installer in enumerate(installers):
        present = installed.get(INSTALLED_AS[installer.component])
        if present is not None and installer.install is InstallType.INSTALL:
            notes.append(f"{installer.label} is already installed (version {present}): {installer.name} not staged "
                         "(install only adds what is missing; force reinstalls)")  # fmt: skip
            continue
        verb = "reinstall" if installer.install is InstallType.FORCE else "install"
        command = _installer_command(installer.name, force=installer.install is InstallType.FORCE)
        found.append(Action(f"2{index}-{verb}-{installer.component.value}.cmd", command, f"{installer.label} {verb}",
                            installer))  # fmt: skip
    if options.domain_unjoin:
        command = 'powershell -NoProfile -Command "Remove-Computer -WorkgroupName WORKGROUP -Force"'
        found.append(Action("30-domain-unjoin.cmd", command, "domain unjoin"))
    if options.defrag:
        found.append(Action("40-defrag.cmd", "defrag C: /O", "defrag"))
    if options.chkdsk:
        found.append(Action("50-chkdsk.cmd", "echo y| chkdsk C: /f", "chkdsk (at the following boot)"))
    return found, notes


def next_step(pending: list[str]) -> str:
    """What the admin must do about pending first-boot actions, in one paragraph ('' when none)."""
    if not pending:
        return ""
    return (
        f"{len(pending)} startup action(s) pending in the image ({', '.join(pending)}): boot it once on its target "
        f"platform and shut it down after {WINDOWS_DIR}\\firstboot.log ends with 'all actions done' -- before "
        "creating a catalog from it, or every provisioned machine runs them at its first boot"
    )


@dataclass(frozen=True)
class RunLog:
    """What ``firstboot.log`` says: each action the runner ended, with its exit code, and whether it finished."""

    ended: dict[str, int]
    started: list[str]
    done: bool

    @classmethod
    def parse(cls, text: str) -> RunLog:
        ended: dict[str, int] = {}
        started: list[str] = []
        done = False
        for line in text.splitlines():
            if m := _STARTED.match(line):
                started.append(m.group(1))
            elif m := _ENDED.match(line):
                ended[m.group(1)] = int(m.group(2))
            elif line.startswith("[") and f"] {DONE}" in line:
                done = True
        return cls(ended, started, done)

    def failed(self) -> list[str]:
        """Actions that ended with a non-zero exit code."""
        return [name for name, code in self.ended.items() if code != 0]


def registration(script: str = f"{WINDOWS_DIR}\\run.cmd") -> dict[str, dict[str, tuple[int, Value]]]:
    """The SOFTWARE keys and values that make Windows run ``script`` at startup as SYSTEM."""
    policy = {
        "GPO-ID": (REG_SZ, "LocalGPO"),
        "SOM-ID": (REG_SZ, "Local"),
        "FileSysPath": (REG_SZ, "C:\\Windows\\System32\\GroupPolicy\\Machine"),
        "DisplayName": (REG_SZ, "Local Group Policy"),
        "GPOName": (REG_SZ, "Local Group Policy"),
        "PSScriptOrder": (REG_DWORD, 1),
    }
    entry = {"Script": (REG_SZ, script), "Parameters": (REG_SZ, ""), "IsPowershell": (REG_DWORD, 0),
             "ExecTime": (REG_QWORD, 0)}  # fmt: skip
    keys: dict[str, dict[str, tuple[int, Value]]] = {}
    for key in SCRIPT_KEYS:
        keys[key] = policy
        keys[f"{key}\\0"] = entry
    return keys
