"""The vSphere CE's result disk: header + gzip tar, checked against the digest guestinfo carries."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from imageport.engine.ce_result import HEADER_BYTES, agent_result, read_result_disk
from imageport.engine.job import AgentMode, AgentResult
from imageport.errors import EngineError


def disk_with(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A result disk as the boot service writes it, and the digest it announces."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    payload = out.getvalue()
    digest = f"imageport-result 1 {len(payload)} {hashlib.sha256(payload).hexdigest()}"
    header = (digest + "\n").encode().ljust(HEADER_BYTES, b"\0")
    return header + payload + b"\0" * 4096, digest


def reader(disk: bytes):  # type: ignore[no-untyped-def]
    return lambda offset, length: disk[offset : offset + length]


def test_a_result_far_larger_than_guestinfo_comes_back_whole() -> None:
    log = os.urandom(3 * 1024 * 1024).hex().encode()  # 6 MiB of log: no guestinfo key, no run-command holds it
    line = (
        "IMAGEPORT-RESULT "
        + AgentResult(ok=True, mode=AgentMode.DIAGNOSTICS, exit_code=0, log="tail").model_dump_json()
    )
    disk, digest = disk_with({"agent.out": line.encode(), "agent.log": log, "boot.log": b"verified"})
    result = agent_result(read_result_disk(reader(disk), digest, "ce"), "ce")
    assert result.ok and result.log == log.decode()


def test_a_damaged_or_foreign_result_disk_is_refused() -> None:
    disk, digest = disk_with({"agent.out": b"x", "agent.log": b"", "boot.log": b""})
    damaged = disk[: HEADER_BYTES + 20] + bytes([disk[HEADER_BYTES + 20] ^ 1]) + disk[HEADER_BYTES + 21 :]
    with pytest.raises(EngineError, match="damaged"):
        read_result_disk(reader(damaged), digest, "ce")
    other, _ = disk_with({"agent.out": b"y", "agent.log": b"", "boot.log": b""})
    with pytest.raises(EngineError, match="does not hold the result guestinfo announces"):
        read_result_disk(reader(other), digest, "ce")
    with pytest.raises(EngineError, match="unreadable result digest"):
        read_result_disk(reader(disk), "imageport-result 2 1 abc", "ce")


def test_a_crashed_agent_is_reported_with_the_end_of_its_log() -> None:
    disk, digest = disk_with({"agent.out": b"", "agent.log": b"Traceback\nMemoryError\n", "boot.log": b"ran\n"})
    with pytest.raises(EngineError, match=r"(?s)ended without a result.*MemoryError"):
        agent_result(read_result_disk(reader(disk), digest, "ce"), "ce")
