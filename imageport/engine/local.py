"""The local backend: the CE is a work directory on the local connector and the agent a separate process.

This is the embedded default and how the agent is exercised end to end. The
work directory ``ROOT/.imageport-ce/NAME/`` holds ``ce.json`` (the tags and the
agent's pid), the disk copy, the job file (mode 0600: an export job carries
share credentials) and the agent's log. The copy is made by the disk engine
(sparse, same container; a stream VMDK becomes VHDX so it can be changed in
place). A kept output is renamed out of the work directory only when the job
succeeded; deleting the directory deletes everything else at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imageport.disks.detect import editable_format
from imageport.disks.io import ByteSource, FileSystem, copy_bytes
from imageport.disks.local_files import LOCAL
from imageport.engine.backend import Ledger, Provisioned, Resource
from imageport.engine.job import RESULT_MARKER, AgentDisk, AgentJob, AgentResult, parse_result
from imageport.engine.tags import CeTags
from imageport.errors import InputError, OutputExists
from imageport.models import DiskFormat
from imageport.transfer.copy import copy_image

CE_DIR = ".imageport-ce"
WORKSPACE = "local-ce"
OUTPUT = "local-output"
KILL_WAIT_S = 10.0
# The local CE is a process, not a machine: there is no console to capture.
BOOTLESS = ("boot_diagnostics: the local compositing engine is a process on this host and does not boot; its "
            "own log is in the result (ce_logs for diagnostics) -- boot diagnostics apply to Azure and vSphere CEs")


@dataclass(frozen=True)
class LocalSource:
    """The disk to work on (any file system the disk engine reads) and, for prepare, where the result goes."""

    fs: FileSystem
    path: str
    output: str | None = None  # local path of the kept output (prepare)
    overwrite: bool = False
    format: DiskFormat | None = None  # what the disk must be (a spec's ``format:``), checked when read


@dataclass
class LocalEngine:
    workspace: Path
    tags: CeTags


class LocalBackend:
    platform = "local"

    def __init__(self, root: str | os.PathLike[str], python: str = sys.executable) -> None:
        self.root = Path(root)
        self.python = python

    @property
    def ce_root(self) -> Path:
        return self.root / CE_DIR

    # --- provision ---------------------------------------------------------------------------

    def provision(self, source: LocalSource, ledger: Ledger, *, keep_copy: bool,
                  boot_diagnostics: bool = False) -> Provisioned:  # fmt: skip
        if boot_diagnostics:
            raise InputError(BOOTLESS)
        if keep_copy:
            if source.output is None:
                raise InputError("a prepare on the local CE needs an output path")
            if Path(source.output).exists() and not source.overwrite:
                raise OutputExists(f"{source.output} exists; use --force (overwrite) to replace it")
        fmt = editable_format(source.path, source.fs, source.format)
        name = f"ce-{ledger.tags.stage}-{uuid.uuid4().hex[:8]}"
        workspace = self.ce_root / name
        ledger.creating(WORKSPACE, str(workspace), order=90)
        workspace.mkdir(parents=True)
        _write_state(workspace, ledger.tags, pid=None)
        ext = posixpath.splitext(source.path)[1] or ".img"
        copy = workspace / f"disk{ext if fmt is not DiskFormat.VHDX else '.vhdx'}"
        output = None
        if keep_copy:
            output = ledger.creating(
                OUTPUT, str(copy), order=10, keep=True, final=source.output, overwrite=source.overwrite
            )
        copy_image(source.path, source.fs, str(copy), LOCAL, fmt, source_format=source.format)
        return Provisioned(LocalEngine(workspace, ledger.tags), AgentDisk(path=str(copy)), output)

    def boot_log(self, engine: LocalEngine) -> str:
        return ""  # never asked: provision refuses boot diagnostics

    def reaches(self, url: str) -> bool:
        """The local CE gets its own copy in the work directory, like every file it reads."""
        return False

    def deliver(self, engine: LocalEngine, name: str, source: ByteSource) -> str:
        """A copy in the work directory (deleted with it): the agent never reads the folder itself."""
        folder = engine.workspace / "installers"
        folder.mkdir(exist_ok=True)
        target = folder / name
        with open(target, "wb") as out:
            copy_bytes(source, out.write)
        return str(target)

    # --- run -----------------------------------------------------------------------------------

    def run_agent(self, engine: LocalEngine, job: AgentJob, timeout_s: float) -> AgentResult:
        from imageport.errors import EngineTimeout

        job_file = engine.workspace / "job.json"
        fd = os.open(job_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(job.model_dump_json())
        log_path = engine.workspace / "agent.log"
        with open(log_path, "wb") as log_file:
            # Its own session, so a timeout kills the agent and anything it started (qemu) together.
            process = subprocess.Popen(
                [self.python, "-m", "imageport.engine.agent", str(job_file)],
                stdout=subprocess.PIPE,
                stderr=log_file,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            _write_state(engine.workspace, engine.tags, pid=process.pid)
            try:
                stdout, _ = process.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(process.pid)
                process.wait()
                raise EngineTimeout(
                    f"local CE {engine.workspace.name}: the {job.mode.value} job outlived its {timeout_s:.0f} s "
                    "timeout; the agent was killed and the CE removed"
                ) from None
        output = stdout.decode(errors="replace")
        if RESULT_MARKER.rstrip() not in output:  # no result line: show the log instead
            output += "\n" + log_path.read_text(errors="replace")[-4000:]
        return parse_result(output, f"local CE {engine.workspace.name} (agent exit {process.returncode})")

    # --- delete / keep ---------------------------------------------------------------------

    def delete(self, resource: Resource) -> None:
        if resource.kind == OUTPUT:
            Path(resource.id).unlink(missing_ok=True)
        elif resource.kind == WORKSPACE:
            workspace = Path(resource.id)
            _kill_agents(workspace)
            if workspace.exists():
                shutil.rmtree(workspace)
        else:
            raise InputError(f"the local CE backend does not know resource kind {resource.kind!r}")

    def finalize(self, resource: Resource) -> str:
        copy, final = resource.id, resource.final
        assert final is not None  # an OUTPUT always names where it goes
        if Path(final).exists() and not resource.overwrite:
            raise OutputExists(f"{final} appeared while the CE worked; the prepared copy was not moved over it")
        Path(final).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(copy, final)  # a rename on the same file system
        return final

    def list_resources(self) -> list[Resource]:
        found = []
        if not self.ce_root.is_dir():
            return found
        for workspace in sorted(self.ce_root.iterdir()):
            tags = CeTags.from_dict(_read_state(workspace).get("tags"))
            if tags is not None:
                found.append(Resource(WORKSPACE, str(workspace), tags, order=90))
        return found


def _write_state(workspace: Path, tags: CeTags, pid: int | None) -> None:
    temp = workspace / "ce.json.tmp"
    temp.write_text(json.dumps({"tags": tags.as_dict(), "pid": pid}))
    os.replace(temp, workspace / "ce.json")


def _read_state(workspace: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((workspace / "ce.json").read_text()))
    except (OSError, ValueError):
        return {}


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def agent_pids(under: Path) -> list[int]:
    """Live agents working on a path under ``under`` (a work directory or a connector root), by command line.

    Not by the pid in ce.json: an orchestrator killed right after starting its agent never
    recorded it, and a recorded pid may since belong to another process.
    """
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "imageport.engine.agent" in cmdline and str(under) in cmdline and _alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def _kill_agents(workspace: Path) -> None:
    """Kill every agent still working in ``workspace`` and wait until they are gone."""
    victims = agent_pids(workspace)
    for pid in victims:
        _kill_group(pid)
    # SIGKILL is delivered asynchronously (a process in uninterruptible I/O dies later): wait, so the
    # work directory is not deleted under a still-running agent.
    deadline = time.monotonic() + KILL_WAIT_S
    while any(_alive(pid) for pid in victims) and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by its parent, does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status
