"""The checks before any data moves (issue 15 part 4), in the Prefect layer because they resolve connectors.

``plan`` says what a run will do (its stages, references, source and boot targets, by spec field);
``run`` checks it all and returns an ``imageport.preflight.report.CheckReport``, asking each
reference's platform adapter what only its platform can say. ``check_stage`` is what a single-stage
flow runs first; a port's plan comes from ``flows/ports.py``.
"""

from __future__ import annotations

from pydantic import BaseModel

from imageport.preflight.report import CheckReport
from tasks.checks.plan import stage_plan
from tasks.checks.run import run_checks


def check_stage(spec: BaseModel) -> CheckReport:
    """Every check of a single-stage flow's spec."""
    return run_checks(stage_plan(spec))


def require_clean(spec: BaseModel) -> None:
    """Run the checks of a single-stage spec; an ``InputError`` listing every problem when there is one."""
    plan = stage_plan(spec)
    run_checks(plan).raise_problems(plan.what)
