"""The agent: the one program every compositing engine runs (``python3 BUNDLE JOB.json``, or
``python -m imageport.engine.agent JOB.json`` from a checkout).

It runs under the CE's own python3, 3.9 to 3.13 (engine/bundle.py): every
module it imports keeps to what 3.9 offers (imageport/compat.py). It reads the
job's ``protocol`` before anything else and refuses a job of another one.

It does exactly one job on the disk attached to its CE -- prepare it, export
it to a share, or report on it -- then writes its ``AgentResult`` beside the
job file (``JOB.result.json``) and as the last ``IMAGEPORT-RESULT`` line of
stdout, and exits with an ``ExitCode``. It never talks to a control plane:
creating and deleting the CE is the orchestrator's business, so a crashed
agent cannot leak anything by itself.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from imageport.engine.job import (
    RESULT_ENCODING_ENV,
    AgentJob,
    AgentMode,
    AgentResult,
    ExitCode,
    check_protocol,
    error_code,
)
from imageport.errors import InputError
from imageport.models import describe_validation_error

log = logging.getLogger("imageport.agent")


class _Tail(logging.Handler):
    """Keeps the last lines of the log for the result (the full log goes to stderr)."""

    def __init__(self, lines: int = 200) -> None:
        super().__init__()
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def load_job(path: str) -> AgentJob:
    from pydantic import ValidationError

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the job file ({exc.strerror})") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InputError(f"agent job {path}: not JSON ({exc})") from None
    check_protocol(raw, "job", f"agent {agent_version()}, job {path}")
    try:
        return AgentJob.model_validate(raw)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, f"agent job {path}")) from None


def agent_version() -> str:
    """The bundle's version, written into it by the build; 'source' when run from a checkout."""
    try:
        from imageport.engine._bundled import VERSION  # type: ignore[import-not-found]
    except ImportError:
        return "source"
    return str(VERSION)


def run_job(job: AgentJob, job_path: str = ".") -> dict[str, Any]:
    """Do the job (``job_path``: its file, beside which fetched installers go); returns what to report."""
    disk = job.disk.resolve()
    log.info("%s job for run %s on %s (agent %s, Python %s)", job.mode.value, job.run_id, disk, agent_version(),
             platform.python_version())  # fmt: skip
    if job.simulate == "crash":  # fault tests: die the way a killed or crashing agent does
        os._exit(70)
    if job.simulate == "hang":
        time.sleep(7 * 86400)
    if not os.path.exists(disk):
        raise InputError(f"{disk}: the attached disk is not there")
    if job.mode is AgentMode.PREPARE:
        from imageport.engine.installer_fetch import fetch_installers
        from imageport.guest.plan import PrepareTarget
        from imageport.guest.prepare import prepare_image

        assert job.prepare is not None and job.target_platform is not None  # the model guarantees both
        target = PrepareTarget(job.target_platform, job.hyper_v_generation, job.prepare)
        work = Path(job_path).parent / "installers"
        staging = fetch_installers(job.installers, work, job.disk) if job.installers else None
        return prepare_image(disk, target, staging=staging).as_dict()
    if job.mode is AgentMode.DIAGNOSTICS:
        from imageport.guest.diagnostics import diagnose

        return diagnose(disk).as_dict()
    return _export(job, disk)


def _export(job: AgentJob, disk: str) -> dict[str, Any]:
    from imageport.disks.io import FileSystem
    from imageport.disks.local_files import LOCAL
    from imageport.transfer.copy import copy_image

    assert job.export is not None
    dest = job.export
    fs: FileSystem = LOCAL
    if dest.share is not None:
        from imageport.storage.smb import SmbShareConfig
        from imageport.storage.smb_files import SmbFileSystem

        fs = SmbFileSystem(SmbShareConfig.model_validate(dest.share).build())
    try:
        result = copy_image(disk, LOCAL, dest.path, fs, dest.disk_format.writes, sha256=True, md5=True)
    finally:
        if fs is not LOCAL:
            fs.close()  # type: ignore[attr-defined]
    return result.as_dict()


def main(argv: list[str]) -> int:
    tail = _Tail()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    tail.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(tail)
    if len(argv) != 1:
        print("usage: python3 BUNDLE JOB.json (or python -m imageport.engine.agent JOB.json)", file=sys.stderr)
        return ExitCode.BAD_JOB
    mode = AgentMode.DIAGNOSTICS
    try:
        job = load_job(argv[0])
        mode = job.mode
        payload = run_job(job, argv[0])
        result = AgentResult(ok=True, mode=mode, exit_code=ExitCode.OK, result=payload)
    except BaseException as exc:  # the agent reports every failure, then exits with its code
        log.exception("job failed")
        code = error_code(exc)
        result = AgentResult(ok=False, mode=mode, exit_code=code, error_kind=type(exc).__name__, error=str(exc))
    result = result.model_copy(update={"log": "\n".join(tail.lines), "agent_version": agent_version()})
    with contextlib.suppress(OSError):  # the stdout line still carries it
        Path(argv[0]).with_suffix(".result.json").write_text(result.model_dump_json(indent=2))
    print(result.line(compressed=os.environ.get(RESULT_ENCODING_ENV) == "zlib"), flush=True)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
