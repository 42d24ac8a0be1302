"""``finalize_image``: boot a prepared image once in a helper VM until its startup actions report done.

A prepare leaves what needs a running Windows (VDA ``/reconfigure``, installers, domain unjoin, chkdsk,
defrag) as startup actions (``guest/firstboot.py``); a catalog made straight from such an image would run
them on every machine it provisions. Finalize boots the image itself -- not a copy: the disk is the
product -- once, on the platform it now lives on, waits for the runner's completion marker (the last line of
``firstboot.log``, "all actions done", read from the running guest the platform's own way), shuts the VM
down and deletes it, leaving the disk.

The helper VM has the compositing engine's guarantees: each resource is recorded in a ``Ledger`` before it
is created and tagged with the run id and an expiry (timeout + an hour), so the reaper finds a leaked one;
teardown (``lifecycle.teardown``) deletes every resource on success, failure and exception, retried, and
raises what it could not remove. The image is never in the ledger: it is never deleted. The wait is timed by
``timeout_s`` here, in the polling loop -- not by a Prefect task timeout, which cannot interrupt a blocking
call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from imageport.engine.backend import Ledger, Resource
from imageport.engine.lifecycle import EXPIRY_MARGIN_S, teardown
from imageport.engine.tags import CeTags
from imageport.errors import EngineTimeout
from imageport.guest.firstboot import DONE, LOG, RunLog

log = logging.getLogger("imageport.engine")

POLL_S = 10.0  # between two reads of the guest's log: each is a run-command or a guest-property read
LOG_EXCERPT = 4000  # the end of firstboot.log kept in the result


@dataclass(frozen=True)
class HelperVm:
    """How big the helper VM is (each platform reads its own fields)."""

    vm_size: str | None = None  # Azure: a VM size; None: the connector's ce_vm_size


@runtime_checkable
class BootsImages(Protocol):
    """A compositing-engine backend that can also boot a prepared image itself in a helper VM."""

    platform: str

    def boot_image(self, image: Any, ledger: Ledger, helper: HelperVm) -> Any:
        """Create a helper VM that boots ``image`` (its disk, not a copy) and start it; ledger each resource
        before creating it. Returns the VM's handle."""
        ...

    def firstboot_log(self, vm: Any, timeout_s: float) -> str | None:
        """The guest's ``firstboot.log`` as it is now ('' if not written yet), or None when the guest cannot be
        asked yet (still booting)."""
        ...

    def shut_down(self, vm: Any) -> None:
        """Stop the VM (the guest's disk then holds everything the actions wrote)."""
        ...

    def image_id(self, image: Any) -> str:
        """The image's id as a result names it."""
        ...

    def delete(self, resource: Resource) -> None: ...

    def finalize(self, resource: Resource) -> str: ...


@dataclass
class Finalized:
    """What a finalize leaves: the image (ready), what the log says, and every helper resource (all removed)."""

    platform: str
    image: str
    vm: str
    log: RunLog
    log_text: str
    removed: list[Resource] = field(default_factory=list)
    seconds: float = 0.0


def finalize_image(
    host: BootsImages,
    image: Any,
    run_id: str,
    *,
    timeout_s: float,
    helper: HelperVm,
    poll_s: float = POLL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Finalized:
    """Boot ``image`` once on ``host`` and wait (at most ``timeout_s``) for its startup actions to finish."""
    started = clock()
    ledger = Ledger(CeTags.for_run(run_id, "finalize", timeout_s + EXPIRY_MARGIN_S))
    succeeded = False
    try:
        vm = host.boot_image(image, ledger, helper)
        text = _wait_for_marker(host, vm, timeout_s, started, poll_s, clock, sleep)
        host.shut_down(vm)
        succeeded = True
    finally:
        # Nothing of the helper is kept: its VM and NIC go on success and failure alike (the image is not ledgered).
        teardown(host, ledger.resources, succeeded=succeeded, sleep=sleep)
    return Finalized(host.platform, host.image_id(image), str(getattr(vm, "name", vm)), RunLog.parse(text),
                     text[-LOG_EXCERPT:], list(ledger.resources), clock() - started)  # fmt: skip


def _wait_for_marker(host: BootsImages, vm: Any, timeout_s: float, started: float, poll_s: float,
                     clock: Callable[[], float], sleep: Callable[[float], None]) -> str:  # fmt: skip
    """Poll the guest's log until its last line says every action ran; ``EngineTimeout`` past the deadline."""
    deadline = started + timeout_s
    text: str | None = None
    while True:
        left = deadline - clock()
        if left <= 0:
            tail = "\n".join((text or "").strip().splitlines()[-10:]) or "(not written yet)"
            raise EngineTimeout(
                f"{host.platform} helper VM {getattr(vm, 'name', vm)}: {LOG} did not end with '{DONE}' within "
                f"{timeout_s:.0f} s (raise finalize.timeout_s); the VM was deleted, the disk kept. The log so far:\n"
                f"{tail}"
            )
        text = host.firstboot_log(vm, left)
        if text is not None and RunLog.parse(text).done:
            return text
        sleep(min(poll_s, max(0.0, deadline - clock())))
