"""How the CLI shows a stage's or a port's result: one renderer each, from the typed models.

``--json`` prints ``model_dump(mode="json")`` (it reads back with ``StageResult.model_validate``);
otherwise a stage is a table of its facts (what it left and removed among them) and a publish's
registration steps as plain text (to copy); a port is one line per stage.
"""

from __future__ import annotations

from typing import Any

from cli.output import console, emit_json, emit_table
from imageport.results import (
    DiagnosticsResult,
    FinalizeDetails,
    PortResult,
    PrepareDetails,
    PublishDetails,
    StageResult,
)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return "-" if value is None else str(value)


def _rows(result: StageResult) -> list[tuple[str, str]]:
    shown_apart = {"stage", "source", "target", "details", "created", "removed", "content_hash"}
    facts = result.model_dump(mode="json", exclude=shown_apart)
    rows = [(k.replace("_", " "), _shown(v)) for k, v in facts.items() if v not in (None, [], False)]
    rows += [("left in place", _shown([r.describe() for r in result.created])),
             ("removed", _shown([r.describe() for r in result.removed]))]  # fmt: skip
    if result.details is not None:
        extra = result.details.model_dump(mode="json", exclude={"kind", "registration", "log", "done"})
        rows += [(k.replace("_", " "), _shown(v)) for k, v in extra.items() if v not in (None, [], False)]
    return rows


def show_stage(result: StageResult, as_json: bool) -> None:
    """One stage's result: JSON, or a table (and a publish's registration steps)."""
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    emit_table(f"{result.stage.value}: {result.source} → {result.target}", ["field", "value"], _rows(result))
    if result.content_hash:  # on a line of its own, unwrapped: to copy whole
        console.print(f"content {result.content_hash}" + (f" ({result.verified})" if result.verified else ""),
                      highlight=False, markup=False)  # fmt: skip
    if isinstance(result.details, PublishDetails):
        console.print(f"registration steps saved as {result.details.registration_file}:\n", highlight=False)
        console.print(result.details.registration, highlight=False, markup=False)
    if isinstance(result.details, FinalizeDetails):
        console.print(finalized_line(result.details), highlight=False, markup=False)
        console.print(f"end of firstboot.log:\n{result.details.log.rstrip()}", highlight=False, markup=False)
    _next_step(result)


def finalized_line(details: FinalizeDetails) -> str:
    """The startup actions a finalize boot ran, on one line."""
    ran = ", ".join(f"{a.name} (exit {'?' if a.exit_code is None else a.exit_code})" for a in details.done)
    return f"startup actions done on {details.image}: {ran or 'none were left'}"


def _next_step(result: StageResult, finalized: set[str] | None = None) -> None:
    """What the admin must do next about a prepared image's pending startup actions (none once finalized)."""
    details = result.details
    if isinstance(details, PrepareDetails) and details.next_step and result.target not in (finalized or set()):
        console.print(f"next, for {result.target}: {details.next_step}", highlight=False, markup=False)


def show_port(result: PortResult, as_json: bool) -> None:
    """A port's result: JSON, or one row per stage."""
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    state = f"failed after {len(result.stages)} stage(s): {result.error}" if result.error else "completed"
    console.print(f"{result.workflow.value}: {state} in {result.wall_seconds:.1f} s "
                  f"(stages {result.stage_seconds:.1f} s)", highlight=False, markup=False)  # fmt: skip
    for s in result.stages:  # one line each, never wrapped: a hash is copied whole
        proof = f"{s.content_hash or 'no content hash'}" + (f" ({s.verified})" if s.verified else "")
        console.print(f"  {s.stage.value}{' (reused)' if s.reused else ''}: {s.source} -> {s.target}, "
                      f"{_shown(s.bytes_written)} bytes written, {proof}, {s.seconds:.1f} s",
                      highlight=False, markup=False)  # fmt: skip
    finalized = {s.source for s in result.stages if isinstance(s.details, FinalizeDetails)}
    for s in result.stages:
        if isinstance(s.details, FinalizeDetails):
            console.print(f"  {finalized_line(s.details)}", highlight=False, markup=False)
        _next_step(s, finalized)


def show_diagnostics(result: DiagnosticsResult, as_json: bool) -> None:
    """A diagnostics report: JSON, or its Markdown (and where it was saved)."""
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    console.print(result.markdown, highlight=False, markup=False)
    for path in result.saved:
        console.print(f"saved {path}", highlight=False, markup=False)


def show_result(result: Any, as_json: bool) -> bool:
    """A run's result when it is a stage's, a port's or a report; False when it is none (nothing shown)."""
    if isinstance(result, PortResult):
        show_port(result, as_json)
    elif isinstance(result, StageResult):
        show_stage(result, as_json)
    elif isinstance(result, DiagnosticsResult):
        show_diagnostics(result, as_json)
    else:
        return False
    return True
