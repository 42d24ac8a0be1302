"""The three roles and the identity a request carries once its credential is checked."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    """Citrix Image Portability's two user roles, plus the one a worker process runs as."""

    ADMINISTRATOR = "administrator"  # everything, as Prefect without a gateway
    PORTER = "porter"  # Image Porter: start, follow, stop and re-run runs; read connectors without secrets
    WORKER = "worker"  # `imageport serve`, `prefect worker` and the flows they run: connector secrets included


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: the name goes into the audit log and the runs' ``imageport-by:`` tag."""

    name: str
    role: Role
