"""Nutanix AHV in the reaper: the temporary image an export makes, found by its marks and deleted if its run dies.

AHV hosts no compositing engine here (it is a source platform), so this backend provisions nothing; it exists
so that ``imageport reap``, the scheduled reap flow and the cancellation/crash hooks -- which walk every CE
host's ``list_resources`` -- also find an export's image (``imageport-export-RUN``, its description carrying
the same tags as every CE resource: ``engine.tags``) that the export could not delete.
"""

from __future__ import annotations

from typing import Any

from imageport.engine.backend import Ledger, Provisioned, Resource
from imageport.engine.job import AgentJob, AgentResult
from imageport.engine.tags import CeTags
from imageport.errors import EngineError, NotFound
from imageport.platforms.ahv.export import delete_image, leftover_images
from imageport.platforms.ahv.session import AhvConfig, AhvSession

IMAGE = "ahv-image"


class AhvLeftovers:
    platform = "ahv"

    def __init__(self, config: AhvConfig) -> None:
        self.config = config
        self.display = config.host

    def provision(self, source: Any, ledger: Ledger, *, keep_copy: bool, boot_diagnostics: bool = False) -> Provisioned:
        raise EngineError(f"{self.display}: imageport runs no compositing engine on Nutanix AHV")

    def run_agent(self, engine: Any, job: AgentJob, timeout_s: float) -> AgentResult:
        raise EngineError(f"{self.display}: imageport runs no compositing engine on Nutanix AHV")

    def boot_log(self, engine: Any) -> str:
        return ""

    def finalize(self, resource: Resource) -> str:
        raise EngineError(f"{self.display}: an export's temporary image is never kept")

    def list_resources(self) -> list[Resource]:
        with AhvSession(self.config) as session:
            found = leftover_images(session)
        resources = []
        for ext_id, _name, marks in found:
            tags = CeTags.from_dict(marks)
            if tags is not None:
                resources.append(Resource(IMAGE, ext_id, tags, 50))
        return resources

    def delete(self, resource: Resource) -> None:
        with AhvSession(self.config) as session:
            try:
                delete_image(session, resource.id)
            except NotFound:
                return  # gone already: deleting a missing thing is done
