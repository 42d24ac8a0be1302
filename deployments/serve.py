"""``imageport serve``: every deployment served from this process against the configured Prefect API.

Registers every deployment of ``prefect.yaml`` -- the one definition of names,
descriptions, example parameters and schedules -- so ``reap`` runs every 30
minutes here exactly as under a work pool, and ``mcs-to-mcs/patch-day`` (the
morning after Patch Tuesday, created paused: its parameters are an example to
edit in the UI) and ``check-connectors/hourly`` are registered paused. Runs
triggered from the UI, the REST API or ``imageport run`` execute here, each in
its own subprocess. For several machines, use ``prefect.yaml`` with a process
work pool instead (see docs/operations.md).
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

import yaml

PREFECT_YAML = Path(__file__).with_name("prefect.yaml")


def yaml_deployments() -> list[dict[str, Any]]:
    """Every deployment of prefect.yaml, as written there."""
    return list(yaml.safe_load(PREFECT_YAML.read_text())["deployments"])


def yaml_deployment(name: str) -> dict[str, Any]:
    """One deployment of prefect.yaml: the single definition of schedules and example parameters."""
    return next(d for d in yaml_deployments() if d["name"] == name)


def _flow(entrypoint: str) -> Any:
    """The flow a prefect.yaml entrypoint names (``flows/ports.py:mcs_to_mcs``)."""
    path, _, function = entrypoint.partition(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function)


def schedules(entry: dict[str, Any]) -> list[Any]:
    """The schedules of a prefect.yaml entry as Prefect schedule objects (every field prefect.yaml takes)."""
    from prefect.schedules import Cron

    return [
        Cron(s["cron"], timezone=s.get("timezone"), day_or=s.get("day_or", True), active=s.get("active", True))
        for s in entry.get("schedules") or []
    ]


def deployments() -> list[Any]:
    """Every prefect.yaml deployment, as this process serves it."""
    return [
        _flow(entry["entrypoint"]).to_deployment(
            name=entry["name"],
            description=entry.get("description"),
            parameters=entry.get("parameters") or {},
            schedules=schedules(entry),
            tags=entry.get("tags") or [],  # HEARTBEAT_TAG: its runs beat every 30 s (serve_all), watched for loss
        )
        for entry in yaml_deployments()
    ]


def serve_all(limit: int | None = None) -> None:
    from prefect import serve

    from deployments.automations import HEARTBEAT_SECONDS, ensure_or_warn

    os.environ.setdefault("DO_NOT_TRACK", "1")
    # The served runs' subprocesses inherit it: their heartbeats let the server tell a lost run (below).
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    ensure_or_warn(logging.getLogger("imageport.serve"))
    serve(*deployments(), limit=limit, print_starting_message=True)


if __name__ == "__main__":
    serve_all()
