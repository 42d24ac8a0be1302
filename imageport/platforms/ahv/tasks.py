"""Following a Prism v4 task (``GET /api/prism/v4.x/config/tasks/{extId}``) to its end.

A v4 mutation answers 202 with a ``TaskReference``; the task moves QUEUED -> RUNNING -> SUCCEEDED
(or FAILED / CANCELED) with a ``progressPercentage``, and names what it made in
``entitiesAffected``. Polling backs off from ``FIRST_POLL`` to ``MAX_POLL`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from imageport.errors import PlatformError
from imageport.platforms.ahv.errors import error_messages, translate_ahv_errors
from imageport.platforms.ahv.session import AhvSession

FIRST_POLL = 0.05
MAX_POLL = 5.0
DONE = {"SUCCEEDED"}
ENDED_BADLY = {"FAILED", "CANCELED"}


def task_ext_id(response: Any) -> str:
    """The task of a 202 answer (its ``data`` is a ``TaskReference``)."""
    ext_id = getattr(getattr(response, "data", None), "ext_id", None)
    if not ext_id:
        raise PlatformError("Prism Central accepted the request but named no task to follow")
    return str(ext_id)


def wait_for_task(
    session: AhvSession,
    ext_id: str,
    what: str,
    *,
    timeout_s: float = 3600,
    progress: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """The finished task (a ``prism.v4.config.Task``); FAILED/CANCELED raises with the task's own messages."""
    api = session.tasks_api()
    delay, waited = FIRST_POLL, 0.0
    while True:
        with translate_ahv_errors(f"{what}: follow task {ext_id}"):
            task = api.get_task_by_id(ext_id).data
        status = str(task.status)
        if progress is not None and task.progress_percentage is not None:
            progress(int(task.progress_percentage))
        if status in DONE:
            return task
        if status in ENDED_BADLY:
            said = [f"{m.code}: {m.message}" if m.code else str(m.message) for m in task.error_messages or []]
            said = said or error_messages(task.legacy_error_message) or [task.legacy_error_message or "no reason given"]
            raise PlatformError(f"{what}: task {ext_id} {status.lower()}: {'; '.join(said)}")
        if waited >= timeout_s:
            raise PlatformError(f"{what}: task {ext_id} still {status} after {timeout_s:.0f} s")
        sleep(delay)
        waited += delay
        delay = min(delay * 2, MAX_POLL)


def affected(task: Any, rel: str) -> str:
    """The extId of the entity of kind ``rel`` (e.g. ``vmm:content:image``) a finished task names."""
    for entity in task.entities_affected or []:
        if entity.rel == rel and entity.ext_id:
            return str(entity.ext_id)
    raise PlatformError(f"task {task.ext_id} succeeded but names no {rel} among what it affected")
