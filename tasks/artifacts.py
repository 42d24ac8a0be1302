"""Run artifacts, redacted: the one way tasks and flows publish a report to the Prefect UI.

An artifact is an output edge like the console: it may name a source or a target, so its text
passes through ``imageport.redaction`` before it leaves.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.artifacts import create_markdown_artifact as _create_markdown_artifact
from prefect.artifacts import create_progress_artifact as _create_progress_artifact

from imageport.disks.content_hash import CONTENT_HASH_PREFIX
from imageport.models import Stage
from imageport.redaction import redact
from imageport.results import (
    FinalizeDetails,
    PendingAction,
    PortResult,
    PrepareDetails,
    PublishDetails,
    StageResult,
)


def create_markdown_artifact(*, key: str | None = None, markdown: str, description: str | None = None) -> Any:
    return _create_markdown_artifact(
        key=key, markdown=redact(markdown), description=redact(description) if description else None
    )


def create_progress_artifact(*, progress: float, description: str | None = None) -> UUID:
    return _create_progress_artifact(progress=progress, description=redact(description) if description else None)


# --- the result table of a port -----------------------------------------------------------------------


def _mib(n: int | None) -> str:
    return f"{n / 2**20:,.0f} MiB" if n else "-"


def _digest(stage: StageResult) -> str | None:
    """The one hash kind of the table: imageport's content hash (``sha256-4m:``) of the disk written."""
    found = stage.content_hash
    return found if found and found.startswith(CONTENT_HASH_PREFIX) else None


def _matches(stage: StageResult, source_hash: str | None) -> str:
    """Whether what the stage wrote is what it read: by hash against the hop before, or the stage's own proof."""
    digest = _digest(stage)
    if isinstance(stage.details, PrepareDetails):
        changed = len(stage.details.changes)
        return f"changed on purpose ({changed} change{'s' * (changed != 1)})"
    if digest and source_hash and digest == source_hash:
        return "yes"
    if digest and source_hash:
        return "**NO**"
    if stage.verified:
        return f"yes ({stage.verified})"
    return "-"


def prepare_changes(stage: StageResult) -> str:
    """What a prepare changed, counted: registry values, files, first-boot actions left ("nothing" if none)."""
    changes = stage.details.changes if isinstance(stage.details, PrepareDetails) else []
    files = sum(c.startswith("/") for c in changes)  # a file change names its guest path; a value its hive
    counts = ((len(changes) - files, "value"), (files, "file"), (len(stage.pending_first_boot), "first-boot action"))
    said = [f"{n} {what}{'s' * (n != 1)}" for n, what in counts if n]
    return ", ".join(said) or "nothing"


def port_table(result: PortResult) -> str:
    """Markdown for the result of a port, narrow enough for 1400 px: one row per stage, one hash kind,
    an explicit "matches source" column; what was left in place below the table; the error, if any."""
    rows, kept = [], []
    hashes: dict[str, str | None] = {}  # reference -> content hash, hop by hop
    for s in result.stages:
        size, moved = s.virtual_size, s.bytes_written
        shown_moved = _mib(moved)
        if s.stage is Stage.PREPARE:  # the CE copies the disk upload wrote: its size; what it changed, not bytes
            before = next((u for u in result.stages if u.stage is Stage.UPLOAD and u.target == s.source), None)
            size = size or (before.virtual_size if before else None)
            shown_moved = prepare_changes(s)
        if isinstance(s.details, FinalizeDetails):  # a boot: what ran, not bytes
            shown_moved = f"{len(s.details.done)} startup action(s) run"
        digest = _digest(s)
        source_hash = hashes.get(s.source)
        hashes[s.target] = digest
        shown = f"`{digest.removeprefix(CONTENT_HASH_PREFIX)[:12]}`" if digest else "-"
        reused = " (reused)" if s.reused else ""
        rows.append(f"| {s.stage.value}{reused} | {s.source} → {s.target} | {_mib(size)} | {shown_moved} | {shown} "
                    f"| {_matches(s, source_hash)} | {s.seconds:.1f} s |")  # fmt: skip
        kept += [f"- {s.stage.value}: {item}" for item in s.kept()]
    count = len(result.stages)
    state = f"failed after {count} stage(s)" if result.error else f"{count} stages"
    text = (
        f"## {result.workflow.value}: {state} in {result.wall_seconds:.1f} s\n\n"
        + (f"**Error:** {result.error}\n\n" if result.error else "")
        + "| stage | from → to | size | moved / changed | content hash | matches source | time |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Content hash: `{CONTENT_HASH_PREFIX}` (imageport's SHA-256 over the virtual disk), first 12 digits.\n"
    )
    if kept:
        text += "\n### Left in place\n\n" + "\n".join(kept) + "\n"
    finalized = {s.source for s in result.stages if isinstance(s.details, FinalizeDetails)}
    for s in result.stages:
        if isinstance(s.details, PrepareDetails) and s.details.next_step and s.target not in finalized:
            text += f"\n**Next, for {s.target}:** {s.details.next_step}\n"
        if isinstance(s.details, FinalizeDetails):
            text += f"\n### Finalized {s.target}\n\n{_finalized(s.details)}"
    return text


def _finalized(details: FinalizeDetails) -> str:
    """A finalize's actions (done, exit code) and the end of firstboot.log."""
    lines = [f"- `{a.name}`: exit {'? (never ended)' if a.exit_code is None else a.exit_code}" for a in details.done]
    body = "\n".join(lines) or "- no action was left to run"
    return f"Booted once in helper VM {details.vm} (deleted) on {details.platform}:\n\n{body}\n\n" \
           f"```\n{details.log.rstrip()}\n```\n"  # fmt: skip


# --- the result of one stage (the single-stage flows) ---------------------------------------------------


def _pending(action: PendingAction) -> str:
    line = f"- `{action.name}`: {action.what}"
    if action.installer is not None:
        i = action.installer
        line += (f" — {i.name}, version {i.version or 'unknown'}, signed by {i.signer or 'nobody (unsigned)'}, "
                 f"sha256 `{i.sha256}`")  # fmt: skip
    return line


def stage_markdown(result: StageResult) -> str:
    """Markdown for one stage's result: the hop, its proof, what it changed, left in place and removed."""
    hashes = " / ".join(f"`{h}`" for h in (result.content_hash, result.sha256, result.md5) if h) or "-"
    size = f"{result.virtual_size:,}" if result.virtual_size is not None else "-"
    text = (
        f"## {result.stage.value}: {result.source} → {result.target}\n\n"
        "| virtual size | moved | content hash / sha256 / md5 | verified | resumed | time |\n"
        "|---|---|---|---|---|---|\n"
        f"| {size} | {_mib(result.bytes_written)} | {hashes} | {result.verified or '-'} | {result.resumed} "
        f"| {result.seconds:.1f} s |\n"
    )
    details = result.details
    if isinstance(details, PrepareDetails):
        changes = "\n".join(f"- `{c}`" for c in details.changes) or "- nothing to change"
        text += (f"\nprepared for {details.platform} {details.generation} ({details.provisioning}); appliance launch "
                 f"{details.launch_s:.1f} s, work {details.work_s:.1f} s\n\n{changes}\n")  # fmt: skip
    if isinstance(details, PrepareDetails) and details.pending:
        text += "\n### Left for first boot\n\n" + "\n".join(_pending(a) for a in details.pending) + "\n"
        text += f"\n**Next:** {details.next_step}\n"
    elif result.pending_first_boot:
        text += "\n### Left for first boot\n\n" + "\n".join(f"- `{a}`" for a in result.pending_first_boot) + "\n"
    if isinstance(details, FinalizeDetails):
        text += f"\n### Startup actions\n\n{_finalized(details)}"
    if isinstance(details, PublishDetails):
        text += (f"\n### Register vDisk {details.vdisk} (saved as {details.registration_file})\n\n"
                 f"```powershell\n{details.registration}\n```\n")  # fmt: skip
    for title, items in (("Warnings", result.warnings), ("Left in place", [r.describe() for r in result.created]),
                         ("Created and removed", [r.describe() for r in result.removed])):  # fmt: skip
        if items:
            text += f"\n### {title}\n\n" + "\n".join(f"- {item}" for item in items) + "\n"
    return text
