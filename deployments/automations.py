"""The server-side automation that marks a lost worker's runs CRASHED (``python -m deployments.automations``).

A worker killed mid-run (the machine lost, the process SIGKILLed) cannot report its run's end: the
run would stay RUNNING for ever, the reaper would keep its leftovers (``tasks.engine.run_is_live``)
and nobody would be told to re-run it. Prefect 3 detects such "zombie" runs only through an
automation on ``prefect.flow-run.heartbeat`` events (docs.prefect.io, "How to detect and respond to
zombie flows"): flow runs emit one every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (30 at least;
``deployments/prefect.yaml`` sets it for every deployment's runs and tags them ``HEARTBEAT_TAG``), and a
*proactive* trigger on the tagged runs fires
when, after a heartbeat, neither another heartbeat nor a terminal state arrives within
``MISSED_HEARTBEATS`` periods. Its action sets the run CRASHED.

``ensure_crash_automation()`` is idempotent: the automation is found by its name and rewritten to
this definition (or created); ``imageport serve`` calls it at start, and so does
``make automations`` for a work-pool installation (docs/operations.md).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

NAME = "imageport-crash-lost-runs"
HEARTBEAT_SECONDS = 30  # Prefect's minimum; prefect.yaml passes it to every run as PREFECT_FLOWS_HEARTBEAT_FREQUENCY
# Runs carry it (prefect.yaml's deployments, `imageport serve`'s) when they beat every HEARTBEAT_SECONDS: the trigger
# watches only those. A run of another period (Prefect's default is 180 s: an in-process `imageport run --local`,
# someone else's deployment) would look lost between two heartbeats.
HEARTBEAT_TAG = "imageport-heartbeats"
# Three periods: one late heartbeat on a loaded machine must not crash a live run (Prefect's docs use 90 s too).
MISSED_HEARTBEATS = 3
ENDED = ("Completed", "Failed", "Cancelled", "Crashed")


def crash_automation() -> Any:
    """The automation, as Prefect's model (not yet saved)."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return Automation(
        name=NAME,
        description=(
            f"Marks a flow run CRASHED when its heartbeats stop for {HEARTBEAT_SECONDS * MISSED_HEARTBEATS} s "
            "(its worker was lost); the reaper then removes what it left and a re-run resumes it."
        ),
        enabled=True,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{state}" for state in ENDED)},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{HEARTBEAT_TAG}"}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=HEARTBEAT_SECONDS * MISSED_HEARTBEATS),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {HEARTBEAT_SECONDS * MISSED_HEARTBEATS} s: its worker was lost",
            )
        ],
    )


def ensure_crash_automation() -> str:
    """Create the automation, or rewrite the one of that name to this definition; its id.

    Reads first and writes only what differs: behind ``imageport server`` a worker user may read
    automations but not write them, so ``imageport serve`` started as one passes once an
    administrator has run ``make automations``."""
    from prefect.automations import Automation

    wanted = crash_automation()
    try:
        saved = Automation.read(name=NAME)
    except ValueError:  # Prefect's answer for "no automation of that name"
        return str(wanted.create().id)
    if _definition(saved) != _definition(wanted):
        wanted.id = saved.id
        wanted.update()
    return str(saved.id)


def _definition(automation: Any) -> Any:
    """What the automation does, comparable: sets stay sets (the server answers them in its own order)."""
    return automation.model_dump(exclude={"id"})


def ensure_or_warn(log: Any) -> None:
    """``ensure_crash_automation`` for ``imageport serve``: a user the server refuses to write it for is told
    who can (one line), and serving goes on -- lost runs then stay Running until an administrator runs it."""
    from prefect.exceptions import PrefectHTTPStatusError

    try:
        ensure_crash_automation()
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code not in (401, 403):
            raise
        log.warning("the server refused to write automation %s for this user (HTTP %d): an administrator runs "
                    "`make automations`; until then a run whose worker is lost stays Running",
                    NAME, exc.response.status_code)  # fmt: skip


if __name__ == "__main__":
    print(f"automation {NAME}: {ensure_crash_automation()}")
