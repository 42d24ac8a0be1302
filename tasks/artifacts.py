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
from imageport.redaction import redact


def create_markdown_artifact(*, key: str | None = None, markdown: str, description: str | None = None) -> Any:
    return _create_markdown_artifact(
        key=key, markdown=redact(markdown), description=redact(description) if description else None
    )


def create_progress_artifact(*, progress: float, description: str | None = None) -> UUID:
    return _create_progress_artifact(progress=progress, description=redact(description) if description else None)


# --- the result table of a port -----------------------------------------------------------------------

KEPT = ("disk_id", "output_id", "file", "registration_file", "output", "target")


def _mib(n: int | None) -> str:
    return f"{n / 2**20:,.0f} MiB" if n else "-"


def _digest(stage: dict[str, Any]) -> str | None:
    """The one hash kind of the table: imageport's content hash (``sha256-4m:``) of the disk written."""
    found = stage.get("content_hash")
    return found if isinstance(found, str) and found.startswith(CONTENT_HASH_PREFIX) else None


def _matches(stage: dict[str, Any], source_hash: str | None) -> str:
    """Whether what the stage wrote is what it read: by hash against the hop before, or the stage's own proof."""
    digest = _digest(stage)
    if stage["stage"] == "prepare":
        changed = len(stage.get("changes") or [])
        return f"changed on purpose ({changed} change{'s' * (changed != 1)})"
    if digest and source_hash and digest == source_hash:
        return "yes"
    if digest and source_hash:
        return "**NO**"
    if stage.get("verified"):
        return f"yes ({stage['verified']})"
    return "-"


def _kept(stage: dict[str, Any]) -> list[str]:
    """What the stage left in place: its outputs only (a compositing engine's temporaries are gone)."""
    if stage["stage"] == "prepare":
        return [str(stage.get("output_id") or stage.get("output") or stage["to"])]
    if stage["stage"] == "publish":
        return [str(stage[k]) for k in ("file", "registration_file") if stage.get(k)]
    return [str(stage.get("disk_id") or stage["to"])]


def port_table(workflow: str, stages: list[dict[str, Any]], wall: float, error: str | None = None) -> str:
    """Markdown for the result of a port, narrow enough for 1400 px: one row per stage, one hash kind,
    an explicit "matches source" column; what was left in place below the table; the error, if any."""
    rows, kept = [], []
    hashes: dict[str, str | None] = {}  # reference -> content hash, hop by hop
    for s in stages:
        size = s.get("virtual_size")
        moved = s.get("data_written") or s.get("bytes_sent") or s.get("bytes_written")
        if s["stage"] == "prepare":  # the CE copies the disk upload wrote: its size, its data
            before = next((u for u in stages if u["stage"] == "upload" and u["to"] == s["from"]), {})
            size, moved = size or before.get("virtual_size"), moved or before.get("data_written")
        digest = _digest(s)
        source_hash = hashes.get(s["from"])
        hashes[s["to"]] = digest
        shown = f"`{digest.removeprefix(CONTENT_HASH_PREFIX)[:12]}`" if digest else "-"
        reused = " (reused)" if s.get("reused") else ""
        rows.append(f"| {s['stage']}{reused} | {s['from']} → {s['to']} | {_mib(size)} | {_mib(moved)} | {shown} "
                    f"| {_matches(s, source_hash)} | {s['stage_seconds']:.1f} s |")  # fmt: skip
        kept += [f"- {s['stage']}: {item}" for item in _kept(s)]
    state = f"failed after {len(stages)} stage(s)" if error else f"{len(stages)} stages"
    text = (
        f"## {workflow}: {state} in {wall:.1f} s\n\n"
        + (f"**Error:** {error}\n\n" if error else "")
        + "| stage | from → to | size | moved | content hash | matches source | time |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Content hash: `{CONTENT_HASH_PREFIX}` (imageport's SHA-256 over the virtual disk), first 12 digits.\n"
    )
    if kept:
        text += "\n### Left in place\n\n" + "\n".join(kept) + "\n"
    return text
