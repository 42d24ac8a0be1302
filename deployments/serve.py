"""``imageport serve``: every deployment served from this process against the configured Prefect API.

Registers each flow of the catalog as a deployment (the same names as
``prefect.yaml``), plus ``mcs-to-mcs/patch-day``: an example monthly cron
schedule (the day after Patch Tuesday, 03:00 UTC), created paused because its
parameters are an example to edit in the UI. Runs triggered from the UI, the
REST API or ``imageport run`` execute here, each in its own subprocess.
For several machines, use ``prefect.yaml`` with a process work pool instead
(see docs/operations.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from deployments.catalog import CATALOG

PREFECT_YAML = Path(__file__).with_name("prefect.yaml")


def yaml_deployment(name: str) -> dict[str, Any]:
    """One deployment of prefect.yaml: the single definition of schedules and example parameters."""
    config = yaml.safe_load(PREFECT_YAML.read_text())
    return next(d for d in config["deployments"] if d["name"] == name)


def deployments() -> list[Any]:
    from prefect.schedules import Cron

    found = [entry.load().to_deployment(name=entry.name) for entry in CATALOG.values()]
    example = yaml_deployment("patch-day")
    (schedule,) = example["schedules"]
    patch_day = (
        CATALOG["mcs-to-mcs"]
        .load()
        .to_deployment(
            name="patch-day",
            parameters=example["parameters"],
            schedule=Cron(schedule["cron"], timezone=schedule["timezone"], active=schedule["active"]),
            description=example["description"],
        )
    )
    return [*found, patch_day]


def serve_all(limit: int | None = None) -> None:
    from prefect import serve

    os.environ.setdefault("DO_NOT_TRACK", "1")
    serve(*deployments(), limit=limit, print_starting_message=True)


if __name__ == "__main__":
    serve_all()
