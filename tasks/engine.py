"""The compositing engine in the Prefect layer: backends from connectors, CE slots, run liveness, reaping.

- ``ce_slot(connector)`` loads the connector once, holds one slot of the Prefect global
  concurrency limit ``imageport-ce-<connector>`` (created from its ``ce_max_concurrent``),
  logging "waiting for a CE slot" while it waits, and yields the backend it hosts CEs on (a lease of
  ``CE_SLOT_LEASE_S``: a holder lost with its worker gives the slot back when it runs out);
- ``run_is_live(run_id)`` asks Prefect whether a flow run is still going, so the
  reaper never takes a live run's CE;
- ``reap_run_resources`` is the flow cancellation/crash hook: it removes what the
  ending run created, expiry or not (Prefect does not promise ``finally`` on cancellation).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from blocks.registry import connector_class, find_connector, list_connectors
from imageport.adapters.registry import ce_backend, ce_host, hosts_ce
from imageport.engine.backend import CeBackend
from imageport.engine.reaper import ReapReport, reap

log = logging.getLogger("imageport.engine")

# A slot is a lease the holder renews every 3/4 of this; a holder killed with its worker stops renewing, and the
# server's repossessor takes the slot back once it runs out: within ~90 s, about when the lost run is marked
# CRASHED (deployments/automations.py), not Prefect's default 300 s.
CE_SLOT_LEASE_S = 90

LIVE_STATES = {"SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"}


def _backend(kind: str, block: Any, name: str) -> CeBackend:
    return ce_backend(kind, block, name)  # refused for a connector kind that cannot host CEs


def all_backends(names: list[str] | None = None) -> list[CeBackend]:
    """A backend per saved connector that can host CEs (or per named connector)."""
    backends = []
    for kind, name in list_connectors():
        if hosts_ce(kind) and (names is None or name in names):
            block = connector_class(kind).load(name)  # the kind is known: one read, not a search
            if not ce_host(kind, name).in_use(block):
                continue  # e.g. a vCenter without a CE template: imageport never made helper VMs there
            backends.append(_backend(kind, block, name))
    return backends


@contextlib.contextmanager
def ce_slot(connector: str) -> Iterator[CeBackend]:
    """The connector's CE backend, holding one of its CE slots for the duration of the block."""
    from prefect import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists

    kind, block = find_connector(connector)
    backend = _backend(kind, block, connector)  # refuses a connector that cannot host CEs before waiting
    name = f"imageport-ce-{connector}"
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(name, int(block.ce_max_concurrent))
        except ObjectAlreadyExists:  # ports started at once: another run created it after our read; update it
            client.upsert_global_concurrency_limit_by_name(name, int(block.ce_max_concurrent))
    _logger().info("waiting for a CE slot on %s (at most %d at once)", connector, block.ce_max_concurrent)
    with concurrency(name, occupy=1, strict=True, lease_duration=CE_SLOT_LEASE_S):
        _logger().info("got a CE slot on %s", connector)
        yield backend


def _logger() -> Any:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return log


def run_is_live(run_id: str) -> bool:
    """True while the Prefect flow run ``run_id`` is scheduled, running, paused or cancelling."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        flow_run_id = uuid.UUID(run_id)
    except ValueError:
        return False  # not a Prefect run (a plain CLI run): its expiry alone decides
    with get_client(sync_client=True) as client:
        try:
            flow_run = client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            return False
    return flow_run.state is not None and flow_run.state.type.value in LIVE_STATES


def reap_all(*, dry_run: bool = False, connectors: list[str] | None = None, run_id: str | None = None) -> ReapReport:
    return reap(all_backends(connectors), run_is_live, dry_run=dry_run, run_id=run_id)


def reap_run_resources(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow ``on_cancellation`` / ``on_crashed`` hook: remove the CE resources of this run now."""
    report = reap(all_backends(), lambda run: False, run_id=str(flow_run.id))
    for line in report.lines():
        log.warning("run %s ended %s: %s", flow_run.id, state.type.value, line)


def current_run_id() -> str:
    """The flow run id CE resources are tagged with (a fresh id outside Prefect)."""
    from prefect.runtime import flow_run

    return str(flow_run.id or f"local-{uuid.uuid4()}")
