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
from typing import Any

from deployments.catalog import CATALOG

# Second Wednesday of the month, 03:00 UTC: the morning after Patch Tuesday's updates went into the master.
PATCH_DAY_CRON = "0 3 * * 3#2"
EXAMPLE_PORT = {
    "workflow": "mcs-to-mcs",
    "source": {"kind": "vsphere", "connector": "vcenter", "vm": "win11-gold"},
    "staging": {"kind": "share", "connector": "images", "path": "staging/win11-gold.vhdx"},
    "targets": [
        {"disk": {"kind": "azure-disk", "connector": "azure", "resource_group": "rg-vdi", "name": "win11-gold"}}
    ],
}


def deployments() -> list[Any]:
    from prefect.schedules import Cron

    found = [entry.load().to_deployment(name=entry.name) for entry in CATALOG.values()]
    patch_day = (
        CATALOG["mcs-to-mcs"]
        .load()
        .to_deployment(
            name="patch-day",
            parameters={"spec": EXAMPLE_PORT},
            schedule=Cron(PATCH_DAY_CRON, timezone="UTC", active=False),
            description="Example: port the patched master image every month. Edit the spec, then activate.",
        )
    )
    return [*found, patch_day]


def serve_all(limit: int | None = None) -> None:
    from prefect import serve

    os.environ.setdefault("DO_NOT_TRACK", "1")
    serve(*deployments(), limit=limit, print_starting_message=True)


if __name__ == "__main__":
    serve_all()
