"""The snapshots an export takes: created marked, destroyed with their disks, found again if a run leaked one.

xapi's ``VM.snapshot`` makes a VM record (``is_a_snapshot``) with a snapshot VDI per disk; ``VM.destroy``
removes the record and its VBDs but *leaves the VDIs*, so each is destroyed too. The snapshot and each of
its VDIs carry the run's marks in ``other_config`` (the same keys as a compositing engine's tags:
``created-by``, ``imageport-run``, ``imageport-stage``, ``imageport-expires``), so the reaper can find
and destroy what a killed run left (``marked_leftovers``). Nothing unmarked is ever listed.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from imageport.errors import PlatformNotFound
from imageport.platforms.xenserver.errors import translate_xenapi_errors
from imageport.platforms.xenserver.inventory import NULL
from imageport.retry import RetryPolicy

MARKED_BY = ("created-by", "imageport")
# Clean-up right after a dropped connection: the SDK's next call connects afresh, so try again shortly.
CLEANUP_RETRY = RetryPolicy(attempts=4, first_delay=0.5, backoff=2.0, max_delay=4.0, deadline=30.0)
log = logging.getLogger("imageport.xenserver")


@dataclass(frozen=True)
class Leftover:
    """A marked snapshot VM or snapshot VDI, with its marks."""

    kind: str  # "xenserver-snapshot" or "xenserver-vdi"
    ref: str
    uuid: str
    name: str
    marks: dict[str, str] = field(default_factory=dict)


def take_snapshot(api: Any, vm: str, name: str, marks: dict[str, str]) -> str:
    """``VM.snapshot`` of ``vm`` named ``name``, then the marks on it and on each of its VDIs.

    If marking fails the snapshot is destroyed before the error goes on: nothing unmarked is left.
    """
    with translate_xenapi_errors(f"snapshot VM {vm}"):
        snap = api.VM.snapshot(vm, name)
    try:
        with translate_xenapi_errors(f"mark snapshot {name}"):
            for key, value in marks.items():
                api.VM.add_to_other_config(snap, key, value)
            for vdi in _disks_of(api, snap):
                for key, value in marks.items():
                    api.VDI.add_to_other_config(vdi, key, value)
    except BaseException:
        destroy_snapshot(api, snap)
        raise
    return snap


def _disks_of(api: Any, snap: str) -> list[str]:
    vdis = []
    for vbd in api.VM.get_VBDs(snap):
        record = api.VBD.get_record(vbd)
        if record["type"] == "Disk" and record["VDI"] != NULL:
            vdis.append(record["VDI"])
    return vdis


def destroy_snapshot(api: Any, snap: str) -> None:
    """Destroy a snapshot VM and its VDIs; one already gone is not an error. Retried after a dropped connection."""

    def destroy() -> None:
        with contextlib.suppress(PlatformNotFound), translate_xenapi_errors(f"destroy snapshot {snap}"):
            vdis = _disks_of(api, snap)
            api.VM.destroy(snap)
            for vdi in vdis:
                destroy_vdi(api, vdi)

    CLEANUP_RETRY.run(destroy)


def destroy_vdi(api: Any, vdi: str) -> None:
    with contextlib.suppress(PlatformNotFound), translate_xenapi_errors(f"destroy VDI {vdi}"):
        api.VDI.destroy(vdi)


def marked_leftovers(api: Any) -> list[Leftover]:
    """Every snapshot VM and snapshot VDI of the pool that carries imageport's marks."""
    found = []
    with translate_xenapi_errors("list marked snapshots"):
        for cls, kind in (("VM", "xenserver-snapshot"), ("VDI", "xenserver-vdi")):
            for ref, record in getattr(api, cls).get_all_records().items():
                marks = dict(record.get("other_config") or {})
                if record.get("is_a_snapshot") and marks.get(MARKED_BY[0]) == MARKED_BY[1]:
                    found.append(Leftover(kind, ref, record["uuid"], record["name_label"], marks))
    return found
