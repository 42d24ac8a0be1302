"""Citrix components staged into an image: which installer, as checked before anything changed.

A ``StagedInstaller`` is what the orchestrator found and checked in the installers folder (name, size,
sha256, the PE version resource's product version, the Authenticode signer's subject as recorded in
the certificate table) and what the prepare made of it (``install``: only if the image lacks the
component; ``force``: reinstall). It travels in the agent job, and back in the prepare's result.
"""

from __future__ import annotations

from pydantic import Field

from imageport.compat import StrEnum
from imageport.models.vocabulary import InstallType, _Model


class Component(StrEnum):
    """The Citrix components prepare can stage; the value is the installer file name's prefix."""

    PVS = "pvs"
    MCSIO = "mcsio"
    MISA = "misa"


COMPONENT_LABELS = {
    Component.PVS: "PVS target device",
    Component.MCSIO: "MCS I/O driver",
    Component.MISA: "MCS security agent",
}
# The name ``guest.facts`` gives each component it finds in the image's Uninstall keys.
INSTALLED_AS = {Component.PVS: "pvs_target_device", Component.MCSIO: "mcsio", Component.MISA: "misa"}


class StagedInstaller(_Model):
    component: Component
    install: InstallType = Field(description="install: only if the image lacks the component; force: reinstall.")
    name: str = Field(min_length=1, description="The installer's file name (as staged into the image).")
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    version: str | None = Field(default=None, description="ProductVersion of the PE version resource.")
    signer: str | None = Field(
        default=None, description="Subject of the Authenticode signing certificate (recorded, not verified)."
    )

    @property
    def label(self) -> str:
        return COMPONENT_LABELS[self.component]
