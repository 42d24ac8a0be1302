"""Every deployment in deployments/prefect.yaml points at a flow that imports."""

from __future__ import annotations

import importlib.util
from datetime import date, datetime
from pathlib import Path

import yaml
from prefect import Flow

REPO = Path(__file__).resolve().parents[2]


def test_every_entrypoint_is_a_flow() -> None:
    config = yaml.safe_load((REPO / "deployments/prefect.yaml").read_text())
    names = []
    for deployment in config["deployments"]:
        path, _, attribute = deployment["entrypoint"].partition(":")
        spec = importlib.util.spec_from_file_location(f"entry_{deployment['name']}", REPO / path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert isinstance(getattr(module, attribute), Flow), deployment["entrypoint"]
        names.append(deployment["name"])
    assert {"hourly", "publish", "convert", "upload", "export", "prepare", "diagnostics"} <= set(names)


def test_the_yaml_and_the_catalog_agree_and_the_example_spec_is_valid() -> None:
    from deployments.catalog import CATALOG
    from imageport.models import PortSpec

    config = yaml.safe_load((REPO / "deployments/prefect.yaml").read_text())
    entrypoints = {d["name"]: d["entrypoint"].replace("/", ".").replace(".py:", ":") for d in config["deployments"]}
    for name, entry in CATALOG.items():
        assert entrypoints.get(name) == entry.entrypoint, name
    (patch_day,) = [d for d in config["deployments"] if d["name"] == "patch-day"]
    PortSpec.model_validate(patch_day["parameters"]["spec"])
    (reap,) = [d for d in config["deployments"] if d["name"] == "reap"]
    assert [s["active"] for s in reap["schedules"]] == [True]  # a leaked CE must not keep billing


def test_patch_day_fires_the_morning_after_patch_tuesday_every_month() -> None:
    from prefect._vendor.croniter import croniter  # the engine Prefect's server schedules with

    from deployments.serve import yaml_deployment

    (schedule,) = yaml_deployment("patch-day")["schedules"]
    fires = croniter(schedule["cron"], datetime(2026, 12, 31), day_or=schedule.get("day_or", True))
    for _ in range(36):  # three years: months beginning on every weekday, a Wednesday among them
        when = fires.get_next(datetime)
        tuesdays = [d for d in range(1, 32) if _weekday(when.year, when.month, d) == 1]
        assert (when.day, when.hour) == (tuesdays[1] + 1, 3), when


def _weekday(year: int, month: int, day: int) -> int | None:
    try:
        return date(year, month, day).weekday()
    except ValueError:
        return None
