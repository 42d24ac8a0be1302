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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from imageport.disks.io import FileSystem
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
    engine: str = ""  # where it was read: '' in place, else the compositing engine's platform
    ce_log: str = ""  # the compositing engine's own log (ce_logs)
    boot_log: str = ""  # the compositing engine's console (boot_diagnostics)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnostics:
        """A report as an agent sent it back (``as_dict``), keys this release does not know dropped."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def files(self, base: str) -> dict[str, bytes]:
        """The report's two files: BASE.json for machines, BASE.md for people (``report_paths``)."""
        json_path, md_path = report_paths(base)
        return {json_path: (json.dumps(self.as_dict(), indent=2) + "\n").encode(), md_path: self.markdown().encode()}

    def save(self, base: Path) -> None:
        """Write BASE.json and BASE.md."""
        for path, data in self.files(str(base)).items():
            Path(path).write_bytes(data)

    def save_to(self, fs: FileSystem, base: str) -> None:
        """Write BASE.json and BASE.md on ``fs`` (a share, a local folder...), each under a temporary name until
        complete."""
        for path, data in self.files(base).items():
            sink = fs.open_sink(path, overwrite=True)
            try:
                sink.pwrite(0, data)
                sink.truncate(len(data))
                sink.commit()
            except BaseException:
                sink.abort()
                raise

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
        where = f"the {self.engine} compositing engine" if self.engine else "the CE"
        for title, text in ((f"Log of {where}", self.ce_log), (f"Console of {where} (boot diagnostics)",
                                                                self.boot_log)):  # fmt: skip
            if text:
                lines += ["", f"## {title}", "", "```", text.strip()[-20000:], "```"]
        return "\n".join(lines) + "\n"


def report_paths(base: str) -> list[str]:
    """Where a report saved as ``base`` goes: BASE.json and BASE.md (a ``.json``/``.md`` given is the base's)."""
    stem, ext = posixpath.splitext(base)
    stem = stem if ext in (".json", ".md") else base
    return [stem + ".json", stem + ".md"]


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
