"""Diagnostics: a read-only report of an image -- what prepare needs to know and what happened before.

OS and build, firmware and partition style, hibernation/Fast Startup/BitLocker
and hive health, Citrix and hypervisor components with versions (from the
Uninstall keys), driver start types in the current control set, the staged
first-boot actions (pending and done) and their log. JSON for machines,
Markdown for people.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imageport.guest import firstboot
from imageport.guest.appliance import appliance
from imageport.guest.facts import gather
from imageport.guest.plan import HYPERV_BOOT
from imageport.guest.registry import OpenHive

DRIVERS = (*HYPERV_BOOT, "pvscsi", "LSI_SAS", "VMTools", "Dhcp", "TermService")
START_NAMES = {0: "boot", 1: "system", 2: "automatic", 3: "manual", 4: "disabled"}


@dataclass
class Diagnostics:
    image: str
    facts: dict[str, Any]
    drivers: dict[str, str] = field(default_factory=dict)
    firstboot_pending: list[str] = field(default_factory=list)
    firstboot_done: list[str] = field(default_factory=list)
    firstboot_registered: bool = False
    firstboot_log: str = ""
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, base: Path) -> None:
        """Write BASE.json and BASE.md."""
        base.with_suffix(".json").write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        base.with_suffix(".md").write_text(self.markdown())

    def markdown(self) -> str:
        f = self.facts
        lines = [
            f"# Diagnostics: {self.image}",
            "",
            f"- **OS**: {f['product']} (build {f['build']}, {f['arch']}), {f['installation_type'] or 'unknown type'}",
            f"- **Boot**: {f['firmware'].upper()} / {f['partition_style'].upper()}; current set "
            f"{f['current_control_set']} of {', '.join(f['control_sets'])}",
            "- **Components**: " + (", ".join(f"{k} {v}" for k, v in sorted(f["components"].items())) or "none found"),
            f"- **Problems**: {'; '.join(self.problems) or 'none'}",
            "",
            "| driver / service | start |",
            "|---|---|",
            *(f"| {name} | {start} |" for name, start in self.drivers.items()),
            "",
            f"## First boot ({'registered' if self.firstboot_registered else 'not registered'})",
            "",
            f"- pending: {', '.join(self.firstboot_pending) or 'none'}",
            f"- done: {', '.join(self.firstboot_done) or 'none'}",
        ]
        if self.firstboot_log:
            lines += ["", "```", self.firstboot_log.strip(), "```"]
        return "\n".join(lines) + "\n"


def diagnose(path: str) -> Diagnostics:
    with appliance(path, readonly=True) as g:
        facts = gather(g, refuse=False)
        report = Diagnostics(path, facts.as_dict())
        if facts.hibernated:
            report.problems.append("hibernated (hiberfil.sys holds a session)")
        if facts.fast_startup:
            report.problems.append("Fast Startup on (HiberbootEnabled=1)")
        report.problems += [f"dirty hive {h}" for h in facts.dirty_hives]
        report.problems += [f"BitLocker volume {d}" for d in facts.bitlocker]
        hive = OpenHive(g, facts.system_hive, write=False)
        try:
            for name in DRIVERS:
                start = hive.get(f"{facts.current_control_set}\\Services\\{name}", "Start")
                if start is not None:
                    report.drivers[name] = f"{start.value} ({START_NAMES.get(int(start.value), '?')})"  # type: ignore[arg-type]
        finally:
            hive.close(commit=False)
        hive = OpenHive(g, facts.software_hive, write=False)
        try:
            report.firstboot_registered = hive.get(f"{firstboot.SCRIPT_KEYS[0]}\\0", "Script") is not None
        finally:
            hive.close(commit=False)
        directory = firstboot.GUEST_DIR
        if g.is_dir(directory):
            report.firstboot_pending = sorted(n for n in g.ls(directory) if n.endswith(".cmd") and n != "run.cmd")
            done = posixpath.join(directory, "done")
            if g.is_dir(done):
                report.firstboot_done = sorted(g.ls(done))
            log = posixpath.join(directory, "firstboot.log")
            if g.is_file(log):
                report.firstboot_log = g.cat(log)[-20000:]
    return report
