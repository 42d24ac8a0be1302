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
from imageport.platforms.xenserver.session import XenServerSession
from imageport.platforms.xenserver.snapshots import destroy_snapshot, destroy_vdi, marked_leftovers

ORDER = {"xenserver-snapshot": 10, "xenserver-vdi": 50}  # the snapshot VM first, then any VDI still there


class XenServerLeftovers:
    platform = "xenserver"

    def __init__(self, session: XenServerSession) -> None:
        self.session = session

    def provision(self, source: Any, ledger: Ledger, *, keep_copy: bool) -> Provisioned:
        raise EngineError(f"{self.session.display}: imageport runs no compositing engine on XenServer")

    def run_agent(self, engine: Any, job: AgentJob, timeout_s: float) -> AgentResult:
        raise EngineError(f"{self.session.display}: imageport runs no compositing engine on XenServer")

    def finalize(self, resource: Resource) -> str:
        raise EngineError(f"{self.session.display}: a XenServer snapshot of an export is never kept")

    def list_resources(self) -> list[Resource]:
        resources = []
        for leftover in marked_leftovers(self.session.api):
            tags = CeTags.from_dict(leftover.marks)
            if tags is not None:
                resources.append(Resource(leftover.kind, leftover.ref, tags, ORDER[leftover.kind]))
        return resources

    def delete(self, resource: Resource) -> None:
        if resource.kind == "xenserver-snapshot":
            destroy_snapshot(self.session.api, resource.id)
        else:
            destroy_vdi(self.session.api, resource.id)
