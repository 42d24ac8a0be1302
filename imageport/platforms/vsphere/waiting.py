"""Waiting for vSphere tasks, with their failures mapped into the error tree."""

from __future__ import annotations

import time
from typing import Any

from pyVmomi import vim

from imageport.errors import PlatformError
from imageport.platforms.vsphere.errors import translate_vsphere_errors
from imageport.platforms.vsphere.inventory import retrieve


def wait_for_task(si: Any, task: Any, where: str, timeout_s: float = 3600, poll_s: float = 0.2) -> Any:
    """The task's result once it succeeds; its fault, translated, if it fails."""
    deadline = time.monotonic() + timeout_s
    while True:
        with translate_vsphere_errors(where):
            found = retrieve(si, [task], ["info.state", "info.error", "info.result"], vim.Task)
        props = found[0][1] if found else {}
        state = str(props.get("info.state", ""))
        if state == "success":
            return props.get("info.result")
        if state == "error":
            fault = props.get("info.error")
            with translate_vsphere_errors(where):
                raise fault if isinstance(fault, BaseException) else PlatformError(f"{where}: {fault}")
        if time.monotonic() > deadline:
            raise PlatformError(f"{where}: still running after {timeout_s:.0f} s")
        time.sleep(poll_s)
        poll_s = min(poll_s * 1.5, 2.0)
