"""XenServer in the reaper: what an export's snapshot leaves if its run dies, found by its marks and destroyed.

XenServer hosts no compositing engine here (it is a source platform), so this backend provisions nothing;
it exists so that ``imageport reap``, the scheduled reap flow and the cancellation/crash hooks -- which
walk every CE host's ``list_resources`` -- also find a snapshot (and its VDIs) an export took and could
not destroy: marked in ``other_config`` with the same tags as every CE resource (``engine.tags``).
"""

from __future__ import annotations

from typing import Any

from imageport.engine.backend import Ledger, Provisioned, Resource
from imageport.engine.job import AgentJob, AgentResult
from imageport.engine.tags import CeTags
from imageport.errors import EngineError
from imageport.platforms.xenserver.session import XenServerConfig, XenServerSession
from imageport.platforms.xenserver.snapshots import destroy_snapshot, destroy_vdi, marked_leftovers

ORDER = {"xenserver-snapshot": 10, "xenserver-vdi": 50}  # the snapshot VM first, then any VDI still there


class XenServerLeftovers:
    platform = "xenserver"

    def __init__(self, config: XenServerConfig) -> None:
        self.config = config
        self.display = XenServerSession(config).display  # each call below logs in and out: a reap is short

    def provision(self, source: Any, ledger: Ledger, *, keep_copy: bool, boot_diagnostics: bool = False) -> Provisioned:
        raise EngineError(f"{self.display}: imageport runs no compositing engine on XenServer")

    def boot_log(self, engine: Any) -> str:
        return ""

    def run_agent(self, engine: Any, job: AgentJob, timeout_s: float) -> AgentResult:
        raise EngineError(f"{self.display}: imageport runs no compositing engine on XenServer")

    def finalize(self, resource: Resource) -> str:
        raise EngineError(f"{self.display}: a XenServer snapshot of an export is never kept")

    def list_resources(self) -> list[Resource]:
        resources = []
        with XenServerSession(self.config) as session:
            leftovers = marked_leftovers(session.api)
        for leftover in leftovers:
            tags = CeTags.from_dict(leftover.marks)
            if tags is not None:
                resources.append(Resource(leftover.kind, leftover.ref, tags, ORDER[leftover.kind]))
        return resources

    def delete(self, resource: Resource) -> None:
        with XenServerSession(self.config) as session:
            if resource.kind == "xenserver-snapshot":
                destroy_snapshot(session.api, resource.id)
            else:
                destroy_vdi(session.api, resource.id)
