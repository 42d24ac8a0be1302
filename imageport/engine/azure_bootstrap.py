"""What an Azure CE runs: cloud-init's custom data at creation, then one run-command script per job.

Nothing is installed from a package index at job time. The distribution's
packages (python3, python3-guestfs, python3-hivex, libguestfs-tools,
qemu-utils, curl) come from cloud-init at first boot (``custom_data``) -- or
are already in a prebuilt gallery image (scripts/build-ce-image.sh). The
script (``bootstrap_script``):

1. waits for cloud-init, then checks python3 and, for jobs that read a guest,
   its guestfs/hivex bindings; if they are missing it reports ``not-ready`` with
   cloud-init's status and log (the VM could not reach its mirrors, typically);
2. downloads the agent bundle and the job through read-only SAS URLs and
   checks the bundle's sha256 before running anything;
3. runs ``python3 BUNDLE JOB.json`` once;
4. uploads its result, the agent's full log and its own log as one gzip'd tar
   through a create/write-only SAS, and prints one ``IMAGEPORT-OUTCOME`` line
   (status, sha256 and size of that archive): all run-command's 4 KiB of
   output has to carry.
"""

from __future__ import annotations

import base64
import io
import re
import shlex
import tarfile
from dataclasses import dataclass

from imageport.engine.job import AgentMode, AgentResult, result_from_json
from imageport.errors import EngineError

PACKAGES = ("python3", "python3-guestfs", "python3-hivex", "libguestfs-tools", "qemu-utils", "curl")
OUTCOME_MARKER = "IMAGEPORT-OUTCOME"
OUTCOME = re.compile(
    rf"^{OUTCOME_MARKER} status=(?P<status>[a-z-]+) sha256=(?P<sha>[0-9a-f]{{64}}) bytes=(?P<size>\d+) "
    r"uploaded=(?P<up>[01])$",
    re.MULTILINE,
)
# What the archive may hold; anything else in it is ignored.
MEMBERS = ("job.result.json", "agent.log", "bootstrap.log", "cloud-init.log")
CUSTOM_DATA_LIMIT = 65535  # bytes of the decoded customData (Azure's documented maximum)


def cloud_config(packages: tuple[str, ...] = PACKAGES) -> str:
    lines = ["#cloud-config", "# imageport compositing engine: the distribution's packages, nothing else.",
             "package_update: true", "packages:", *(f"  - {p}" for p in packages)]  # fmt: skip
    return "\n".join(lines) + "\n"


def custom_data(packages: tuple[str, ...] = PACKAGES) -> str:
    """``osProfile.customData``: the cloud-config, base64 (Azure decodes it into the VM's cloud-init)."""
    raw = cloud_config(packages).encode()
    assert len(raw) <= CUSTOM_DATA_LIMIT
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Delivery:
    """Where the CE fetches the bundle and the job, and where it puts its result (SAS URLs: secrets)."""

    bundle_url: str
    bundle_sha256: str
    job_url: str
    result_url: str
    mode: AgentMode


def _needs(mode: AgentMode) -> str:
    """Python modules the job needs from the distribution (a prepare or diagnostics job reads a guest)."""
    return "" if mode is AgentMode.EXPORT else "guestfs hivex"


def bootstrap_script(d: Delivery) -> list[str]:
    """The run-command script (POSIX sh); the URLs are the only secrets in it, each for one blob, short-lived."""
    q = shlex.quote
    return [
        "set -u",
        "umask 077",
        "work=$(mktemp -d) || exit 1",
        f"BUNDLE_URL={q(d.bundle_url)}",
        f"BUNDLE_SHA={q(d.bundle_sha256)}",
        f"JOB_URL={q(d.job_url)}",
        f"RESULT_URL={q(d.result_url)}",
        f"NEEDS={q(_needs(d.mode))}",
        'log="$work/bootstrap.log"',
        'say() { echo "$(date -u +%FT%TZ) $*" >> "$log"; }',
        "finish() {",
        '  ( cd "$work" && tar -czf out.tar.gz $(ls job.result.json agent.log bootstrap.log cloud-init.log '
        "2>/dev/null) )",
        '  sha=$(sha256sum "$work/out.tar.gz" | cut -d" " -f1); size=$(wc -c < "$work/out.tar.gz" | tr -d " ")',
        "  up=0",
        '  curl -fsS --retry 3 --max-time 600 -X PUT -H "x-ms-blob-type: BlockBlob" '
        '--data-binary "@$work/out.tar.gz" "$RESULT_URL" > "$work/upload.log" 2>&1 && up=1',
        f'  echo "{OUTCOME_MARKER} status=$1 sha256=$sha bytes=$size uploaded=$up"',
        '  [ "$up" = 1 ] || tail -n 30 "$log" "$work/upload.log" "$work/cloud-init.log" 2>/dev/null',
        '  rm -rf "$work"',
        "  exit 0",
        "}",
        "# 1. The distribution's packages: installed by cloud-init at first boot, or part of the image.",
        "ci=0",
        "if command -v cloud-init >/dev/null 2>&1; then",
        '  cloud-init status --wait --long > "$work/cloud-init.log" 2>&1; ci=$?',
        '  tail -n 200 /var/log/cloud-init-output.log >> "$work/cloud-init.log" 2>/dev/null',
        "fi",
        'say "cloud-init status exit $ci"',
        'missing=""',
        'command -v python3 >/dev/null 2>&1 || missing="python3"',
        'if [ -z "$missing" ]; then',
        '  for m in $NEEDS; do python3 -c "import $m" 2>/dev/null || missing="$missing python3-$m"; done',
        "fi",
        'if [ -n "$missing" ]; then say "missing: $missing"; finish not-ready; fi',
        'say "python3 $(python3 -c "import sys; print(sys.version.split()[0])")"',
        "# 2. The bundle and the job, through read-only SAS; the bundle's digest is checked before it runs.",
        'curl -fsS --retry 3 -o "$work/agent.pex" "$BUNDLE_URL" 2>>"$log" || finish download-failed',
        'echo "$BUNDLE_SHA  $work/agent.pex" | sha256sum -c - >> "$log" 2>&1 || finish bundle-mismatch',
        'curl -fsS --retry 3 -o "$work/job.json" "$JOB_URL" 2>>"$log" || finish download-failed',
        "# 3. The agent, once, with the CE's own python3 (pex unpacks its wheels under PEX_ROOT: no index).",
        'PEX_ROOT="$work/pex" LIBGUESTFS_BACKEND=direct python3 "$work/agent.pex" "$work/job.json" '
        '> "$work/agent.out" 2> "$work/agent.log"',
        'say "agent exit $?"',
        '[ -f "$work/job.result.json" ] || finish no-result',
        "finish done",
    ]


@dataclass(frozen=True)
class Outcome:
    status: str
    sha256: str
    size: int
    uploaded: bool
    output: str  # what run-command returned (the last 4 KiB)


def parse_outcome(message: str, where: str) -> Outcome:
    found = list(OUTCOME.finditer(message))
    if not found:
        tail = "\n".join(message.strip().splitlines()[-15:])
        raise EngineError(f"{where}: the bootstrap script ended without its outcome line; its output:\n{tail}")
    m = found[-1]
    return Outcome(m["status"], m["sha"], int(m["size"]), m["up"] == "1", message)


def unpack(data: bytes, outcome: Outcome, where: str) -> dict[str, str]:
    """The archive's members by name, after checking it is the one the CE announced."""
    import hashlib

    if hashlib.sha256(data).hexdigest() != outcome.sha256 or len(data) != outcome.size:
        raise EngineError(f"{where}: the result blob is not the archive the CE announced (sha256 or size differ)")
    members: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for info in archive.getmembers():
                name = info.name.removeprefix("./")
                if name in MEMBERS and info.isfile():
                    extracted = archive.extractfile(info)
                    if extracted is not None:
                        members[name] = extracted.read().decode(errors="replace")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise EngineError(f"{where}: unreadable result archive ({exc})") from None
    return members


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def result_of(outcome: Outcome, members: dict[str, str], where: str, storage: str) -> AgentResult:
    """The agent's result, or the error the bootstrap's status stands for, with the CE's own log."""
    ce_log = "\n".join(
        f"--- {name}\n{_tail(members[name])}" for name in ("bootstrap.log", "cloud-init.log") if members.get(name)
    ) or _tail(outcome.output)
    if outcome.status == "done" and "job.result.json" in members:
        result = result_from_json(members["job.result.json"], where)
        return result.model_copy(update={"log": members.get("agent.log") or result.log})
    if outcome.status in ("done", "no-result"):
        last = _tail(members.get("agent.log", ""), 15) or "(nothing)"
        raise EngineError(f"{where}: the agent ended without a result (crashed?); its last output:\n{last}")
    if outcome.status == "not-ready":
        raise EngineError(
            f"{where}: the CE is not ready to run the agent (its image lacks the distribution's packages: "
            f"{', '.join(PACKAGES)}). cloud-init installs them at first boot, so the VM's subnet needs egress to "
            "its distribution's mirrors -- or set ce_gallery_image to a prebuilt CE image "
            f"(scripts/build-ce-image.sh). The CE's log:\n{ce_log}"
        )
    if outcome.status == "download-failed":
        raise EngineError(
            f"{where}: the CE could not download the agent bundle or its job from {storage} (does its subnet "
            f"reach the storage account?). The CE's log:\n{ce_log}"
        )
    if outcome.status == "bundle-mismatch":
        from imageport.errors import BundleError

        raise BundleError(f"{where}: the agent bundle the CE downloaded does not have the sha256 recorded in the "
                          f"job; it was not run. The CE's log:\n{ce_log}")  # fmt: skip
    raise EngineError(f"{where}: the bootstrap script reported {outcome.status!r}. The CE's log:\n{ce_log}")
