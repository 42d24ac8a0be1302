"""The result disk of a vSphere CE: how results and logs of any size come back.

The orchestrator attaches a small thin disk (``RESULT_DISK_MB``) to the helper
VM. The boot service writes to it, raw, from byte 0:

- sector 0: the header line ``imageport-result 1 LENGTH SHA256`` padded with NULs to 512 bytes;
- from byte 512: LENGTH bytes of a gzip-compressed tar holding ``agent.out``
  (the agent's stdout, its ``IMAGEPORT-RESULT`` line last), ``agent.log``
  (its full stderr log) and ``boot.log`` (the boot service's own messages).

It then puts the same ``LENGTH SHA256`` in ``guestinfo.imageport.result`` and
powers off; the orchestrator reads the disk's flat file from the datastore
and checks it against that digest. A boot service that refuses the job (an
unknown boot protocol, a digest that does not match) writes
``refused: REASON`` to the guestinfo key instead.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass

from imageport.engine.job import AgentResult, parse_result
from imageport.errors import EngineError

RESULT_DISK_MB = 64
HEADER_BYTES = 512
_HEADER = re.compile(rb"imageport-result 1 (\d+) ([0-9a-f]{64})\n")
_DIGEST = re.compile(r"imageport-result 1 (\d+) ([0-9a-f]{64})")
REFUSED = "refused:"


@dataclass(frozen=True)
class ResultFiles:
    agent_out: str
    agent_log: str
    boot_log: str


def read_result_disk(read: Callable[[int, int], bytes], digest: str, where: str) -> ResultFiles:
    """Read and check the result disk (``read(offset, length)``) against the digest the CE put in guestinfo."""
    expected = _DIGEST.fullmatch(digest.strip())
    if expected is None:
        raise EngineError(f"{where}: unreadable result digest in guestinfo: {digest[:120]!r}")
    length, sha = int(expected.group(1)), expected.group(2)
    header = _HEADER.match(read(0, HEADER_BYTES))
    if header is None or (int(header.group(1)), header.group(2).decode()) != (length, sha):
        raise EngineError(f"{where}: the result disk does not hold the result guestinfo announces")
    payload = read(HEADER_BYTES, length) if length else b""
    if len(payload) != length or hashlib.sha256(payload).hexdigest() != sha:
        raise EngineError(f"{where}: the result on the result disk is damaged (sha256 does not match)")
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
            files = {m.name.lstrip("./"): tar.extractfile(m) for m in tar.getmembers() if m.isfile()}
            text = {name: (f.read().decode(errors="replace") if f else "") for name, f in files.items()}
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise EngineError(f"{where}: unreadable result archive: {exc}") from None
    return ResultFiles(text.get("agent.out", ""), text.get("agent.log", ""), text.get("boot.log", ""))


def agent_result(files: ResultFiles, where: str) -> AgentResult:
    """The agent's result, its log the full one from the disk; a crashed agent's error carries the log's end."""
    try:
        result = parse_result(files.agent_out, where)
    except EngineError as exc:
        tail = "\n".join((files.boot_log + files.agent_log).strip().splitlines()[-15:])
        raise EngineError(f"{exc}\nthe end of the CE's log:\n{tail}") from None
    return result.model_copy(update={"log": files.agent_log or result.log})
