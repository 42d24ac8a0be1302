"""The diagnostics task: a read-only report on an image (JSON + Markdown), read where the disk lives.

A local image is read in place (the appliance opens it read-only: no copy, no CE). An Azure disk or snapshot
and a vSphere datastore disk are read by a compositing engine of their connector, on a scratch copy deleted
with it -- the disk a failed port left on Azure or vSphere is debugged there, not downloaded first. The
CE's own log (``ce_logs``) and console (``boot_diagnostics``) go into the report when asked. The report is
saved as BASE.json + BASE.md on a share or a local folder (``output``), each under a temporary name until
complete.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from blocks.resolve import CONNECTORS, located, writable
from imageport.adapters.registry import adapter_for
from imageport.disks.detect import detect_format
from imageport.engine.job import AgentMode
from imageport.engine.lifecycle import Outcome, compositing_engine
from imageport.errors import InputError
from imageport.guest.diagnostics import Diagnostics, diagnose, report_paths
from imageport.models import DiagnosticsSpec
from imageport.results import DiagnosticsResult, from_diagnostics
from tasks.checks.plan import IN_PLACE_ONLY
from tasks.engine import ce_slot, current_run_id
from tasks.policy import RETRY_TRANSIENT


def _in_place(spec: DiagnosticsSpec) -> Diagnostics:
    if spec.ce_logs or spec.boot_diagnostics:
        raise InputError(f"diagnostics: {IN_PLACE_ONLY}")
    with located(spec.disk) as (_fs, path):
        detect_format(path, expected=getattr(spec.disk, "format", None))  # damaged or not as stated: refused
        return diagnose(path)


def _on_engine(spec: DiagnosticsSpec, source: Any, outcome: Outcome) -> Diagnostics:
    """The agent's report from a CE of the disk's connector (one of its slots held while the CE exists)."""
    with (
        ce_slot(spec.disk.connector) as backend,
        compositing_engine(backend, source, AgentMode.DIAGNOSTICS, current_run_id(), timeout_s=spec.timeout_s,
                           boot_diagnostics=spec.boot_diagnostics, outcome=outcome) as ce,  # fmt: skip
    ):
        result = ce.run(ce.job())
    report = Diagnostics.from_dict(result.result)
    report.engine = backend.platform
    if spec.ce_logs:
        report.ce_log = result.log
    if spec.boot_diagnostics:
        report.boot_log = outcome.boot_log or "(the CE wrote nothing to its console)"
    return report


@task(name="diagnose_image", task_run_name="diagnose {spec.disk.kind} disk", **RETRY_TRANSIENT)
def diagnose_image(spec: DiagnosticsSpec) -> DiagnosticsResult:
    adapter = adapter_for(spec.disk)
    source = adapter.diagnostics_source(spec.disk, CONNECTORS)  # refuses a kind nothing reads for a report
    outcome = Outcome() if source is not None else None
    report = _in_place(spec) if outcome is None else _on_engine(spec, source, outcome)
    report.image = adapter.format(spec.disk)  # the reference, not the CE's device path
    saved: list[str] = []
    if spec.output is not None:
        output = spec.output
        with writable(output) as (out_fs, out_path):
            report.save_to(out_fs, out_path)
        saved = [adapter_for(output).format(output.model_copy(update={"path": p})) for p in report_paths(output.path)]
    return from_diagnostics(report, saved, outcome)
