"""What the agent is asked to do and what it answers: the contract between a CE and its orchestrator.

The job travels as JSON (a file for the local backend, a blob behind a
read-only SAS on Azure, on the job CD on vSphere); the result comes back
as a file and as one ``IMAGEPORT-RESULT {json}`` line on stdout (on Azure the
file, compressed with the full log, goes back through a blob and stdout
carries only its digest: ``azure_delivery.py``).

Both carry ``protocol``. Each side reads it from the raw JSON *before*
validating anything else, so an agent and an orchestrator of different
protocols refuse each other in one line each, whatever else changed.
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from enum import IntEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from imageport.compat import StrEnum
from imageport.errors import EngineError, GuestRefused, ImageportError, InputError, ProtocolMismatch
from imageport.models import HyperVGeneration, PrepareOptions, ShareDiskFormat, TargetPlatform
from imageport.models.installers import StagedInstaller

# The job/result protocol: bumped whenever a job or result field changes meaning. An agent refuses a job
# of another protocol and the orchestrator a result of another, each in one line (see ``check_protocol``).
# 2: a prepare job carries its checked installers (``installers``) instead of a local folder.
# 3: an installer may be fetched from a disk attached at a SCSI unit (``lun:N``: a vSphere CE).
PROTOCOL_VERSION = 3
# ``JobInstaller.fetch`` of an installer on a disk of its own: its bytes from offset 0, at this unit.
LUN_FETCH = "lun:"
RESULT_MARKER = "IMAGEPORT-RESULT "
# zlib + base64: an Azure run-command returns only the last 4096 bytes of stdout.
COMPRESSED_MARKER = "IMAGEPORT-RESULT-Z "
RESULT_ENCODING_ENV = "IMAGEPORT_RESULT_ENCODING"
# Where an attached disk appears in a Linux CE, by LUN: Azure's udev rules make these links.
AZURE_LUN_ROOT = "/dev/disk/azure/scsi1"
# Test stand-ins (and unusual CE images) point the agent at their own device directory.
DEVICE_ROOT_ENV = "IMAGEPORT_DEVICE_ROOT"


def check_protocol(raw: object, what: str, where: str) -> None:
    """Refuse ``raw`` (a parsed job or result) unless it speaks ``PROTOCOL_VERSION``."""
    theirs = raw.get("protocol") if isinstance(raw, dict) else None
    if theirs == PROTOCOL_VERSION:
        return
    spoken = f"protocol {theirs}" if isinstance(theirs, int) else "no protocol version (a release before protocol 1)"
    side = "agent" if what == "job" else "orchestrator"
    advice = (
        "ship the bundle built from the orchestrator's release (imageport engine bundle)"
        if what == "job"
        else "the CE ran an agent bundle of another release; rebuild it (imageport engine bundle)"
    )
    raise ProtocolMismatch(f"{where}: the {what} speaks {spoken}, this {side} speaks protocol {PROTOCOL_VERSION}; "
                           f"{advice}")  # fmt: skip


class AgentMode(StrEnum):
    PREPARE = "prepare"
    EXPORT = "export"
    DIAGNOSTICS = "diagnostics"


class ExitCode(IntEnum):
    """The agent's exit status: the orchestrator maps it back onto the error tree."""

    OK = 0
    FAILED = 1  # an unexpected error inside the agent
    BAD_JOB = 2  # the job file is unreadable or invalid
    PROTOCOL = 5  # the job speaks another protocol version (checked before anything else in it)
    REFUSED = 3  # the guest refused the change (hibernated, BitLocker, ...): a user matter
    IMAGE_ERROR = 4  # any other imageport error (format, storage, transfer)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentDisk(_Strict):
    """The disk the agent works on: a file, or the LUN it is attached at."""

    path: str | None = Field(default=None, description="Image file or block device path.")
    lun: int | None = Field(default=None, ge=0, le=63, description="LUN of the attached data disk.")
    device_root: str = Field(default=AZURE_LUN_ROOT, description="Directory holding lunN device links.")

    @model_validator(mode="after")
    def _one_way(self) -> AgentDisk:
        if (self.path is None) == (self.lun is None):
            raise ValueError("give the disk as path or lun, exactly one")
        return self

    def resolve(self) -> str:
        if self.path is not None:
            return self.path
        return str(Path(os.environ.get(DEVICE_ROOT_ENV) or self.device_root) / f"lun{self.lun}")


class ExportDestination(_Strict):
    """Where an export job writes: a local file, or a file on an SMB share (config carried in the job)."""

    path: str = Field(description="Local file, or the path inside the share.")
    share: dict[str, Any] | None = Field(
        default=None, description="SmbShareConfig fields, password included: the job file is a secret."
    )
    disk_format: ShareDiskFormat = ShareDiskFormat.VHDX


class BundleStamp(_Strict):
    """Which agent bundle the job was made for (recorded in the job; the CE checks the file's digest)."""

    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class JobInstaller(_Strict):
    """A checked installer and where the CE fetches it: a local path, a URL (an Azure blob's read SAS), or a
    disk of its own at a SCSI unit (``lun:N``, found like the job's disk: a CE with no network)."""

    installer: StagedInstaller
    fetch: str = Field(
        min_length=1,
        description="A path in the CE, an http(s) URL (a secret, like the job) "
        "or lun:N (the installer's bytes from offset 0 of that disk).",
    )


class AgentJob(_Strict):
    protocol: int = PROTOCOL_VERSION
    mode: AgentMode
    run_id: str = Field(min_length=1)
    disk: AgentDisk
    target_platform: TargetPlatform | None = None
    hyper_v_generation: HyperVGeneration = HyperVGeneration.V2
    prepare: PrepareOptions | None = None
    installers: list[JobInstaller] = Field(default_factory=list, description="What prepare stages (checked).")
    export: ExportDestination | None = None
    bundle: BundleStamp | None = Field(default=None, description="The agent bundle this job is for.")
    simulate: str | None = Field(
        default=None, description="Test hook: 'crash' or 'hang' instead of the work (fault tests)."
    )

    @model_validator(mode="after")
    def _mode_fields(self) -> AgentJob:
        if self.mode is AgentMode.PREPARE and (self.prepare is None or self.target_platform is None):
            raise ValueError("a prepare job needs prepare options and target_platform")
        if self.mode is AgentMode.EXPORT and self.export is None:
            raise ValueError("an export job needs an export destination")
        return self


class AgentResult(_Strict):
    protocol: int = PROTOCOL_VERSION
    agent_version: str = Field(default="source", description="The bundle's version ('source': not from a bundle).")
    ok: bool
    mode: AgentMode
    exit_code: int
    error_kind: str | None = Field(default=None, description="Error class name when it failed.")
    error: str | None = None
    result: dict[str, Any] = Field(default_factory=dict)
    log: str = Field(default="", description="The tail of the agent's log.")

    def line(self, compressed: bool = False) -> str:
        if not compressed:
            return RESULT_MARKER + self.model_dump_json()
        slim = self.model_copy(update={"log": self.log[-1500:]})  # the full log stays in the CE's file
        return COMPRESSED_MARKER + base64.b64encode(zlib.compress(slim.model_dump_json().encode(), 9)).decode()

    def raise_for_failure(self, where: str) -> None:
        """Turn a failed result back into the error tree on the orchestrator's side."""
        if self.ok:
            return
        message = f"{where}: the agent failed ({self.error_kind}): {self.error}"
        if self.exit_code == ExitCode.REFUSED:
            raise GuestRefused(message)
        if self.exit_code == ExitCode.BAD_JOB:
            raise InputError(message)
        if self.exit_code == ExitCode.PROTOCOL:
            raise ProtocolMismatch(f"{where}: the agent refused the job: {self.error}")
        raise EngineError(message)


def result_from_json(text: str, where: str) -> AgentResult:
    """A result document (the agent's ``JOB.result.json``): its protocol first, then the rest."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise EngineError(f"{where}: unreadable agent result: {exc}") from None
    check_protocol(raw, "result", where)
    try:
        return AgentResult.model_validate(raw)
    except ValueError as exc:
        raise EngineError(f"{where}: unreadable agent result: {exc}") from None


def parse_result(output: str, where: str) -> AgentResult:
    """The agent's result from its stdout (the last marker line wins)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.startswith((RESULT_MARKER, COMPRESSED_MARKER))]
    if not lines:
        tail = "\n".join(output.strip().splitlines()[-10:])
        raise EngineError(f"{where}: the agent ended without a result (crashed?); its last output:\n{tail}")
    last = lines[-1]
    try:
        if last.startswith(COMPRESSED_MARKER):
            text = zlib.decompress(base64.b64decode(last[len(COMPRESSED_MARKER) :])).decode()
        else:
            text = last[len(RESULT_MARKER) :]
    except (ValueError, zlib.error) as exc:
        raise EngineError(f"{where}: unreadable agent result: {exc}") from None
    return result_from_json(text, where)


def error_code(exc: BaseException) -> ExitCode:
    if isinstance(exc, ProtocolMismatch):
        return ExitCode.PROTOCOL
    if isinstance(exc, GuestRefused):
        return ExitCode.REFUSED
    if isinstance(exc, InputError):
        return ExitCode.BAD_JOB
    if isinstance(exc, ImageportError):
        return ExitCode.IMAGE_ERROR
    return ExitCode.FAILED
