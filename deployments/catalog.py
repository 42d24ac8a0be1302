"""Every deployable flow, by the short name the CLI, ``prefect.yaml`` and ``imageport serve`` share.

One table, so ``imageport run export`` and the UI's ``export-disk/export``
always mean the same flow, with the same spec model for its ``spec`` parameter.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from imageport.errors import InputError
from imageport.models import (
    DiagnosticsSpec,
    ExportSpec,
    FinalizeSpec,
    PortSpec,
    PrepareSpec,
    PublishSpec,
    UploadSpec,
)


@dataclass(frozen=True)
class Deployable:
    name: str  # deployment name (the CLI's word)
    flow_name: str
    entrypoint: str  # module:function
    spec: type[BaseModel] | None  # the model of the flow's ``spec`` parameter, if it takes one

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    def load(self) -> Any:
        module, function = self.entrypoint.split(":")
        return getattr(importlib.import_module(module), function)


CATALOG: dict[str, Deployable] = {
    d.name: d
    for d in (
        Deployable("mcs-to-mcs", "mcs-to-mcs", "flows.ports:mcs_to_mcs", PortSpec),
        Deployable("pvs-to-mcs", "pvs-to-mcs", "flows.ports:pvs_to_mcs", PortSpec),
        Deployable("pvs-to-pvs", "pvs-to-pvs", "flows.ports:pvs_to_pvs", PortSpec),
        Deployable("mcs-to-pvs", "mcs-to-pvs", "flows.ports:mcs_to_pvs", PortSpec),
        Deployable("export", "export-disk", "flows.export_disk:export_disk_flow", ExportSpec),
        Deployable("upload", "upload-image", "flows.upload_image:upload_image_flow", UploadSpec),
        Deployable("prepare", "prepare-image", "flows.prepare_image:prepare_image_flow", PrepareSpec),
        Deployable("finalize", "finalize-image", "flows.finalize_image:finalize_image_flow", FinalizeSpec),
        Deployable("publish", "publish-vdisk", "flows.publish_vdisk:publish_vdisk_flow", PublishSpec),
        Deployable("diagnostics", "diagnostics", "flows.diagnostics:diagnostics_flow", DiagnosticsSpec),
        Deployable("reap", "reap", "flows.reap:reap_flow", None),
        Deployable("convert", "convert-disk", "flows.convert_disk:convert_disk", None),
        Deployable("clean", "clean-outputs", "flows.clean_outputs:clean_outputs", None),
        Deployable("hourly", "check-connectors", "flows.check_connectors:check_connectors", None),
    )
}


def deployable(name: str) -> Deployable:
    try:
        return CATALOG[name]
    except KeyError:
        raise InputError(f"{name!r} is not a deployment; use one of {', '.join(CATALOG)}") from None
