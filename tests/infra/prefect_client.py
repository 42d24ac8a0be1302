"""This test process's Prefect client pointed at another server for a while (a scale-out or lost-worker
server the test started), and back.

Prefect keeps one events worker per process for a self-hosted server, keyed by client type only: the
first one made reads the API URL of its moment and keeps it. Made while pointed elsewhere, it would
keep sending every later test's events (task-run records among them) to a server that is gone:
those tests' task runs are never recorded (404 on read), and the session's harness waits minutes at
exit to drain it. So on leaving, the events are sent while that server is still up and the worker is
stopped; the next event makes a new one for the URL of its own moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def pointed_at(api_url: str) -> Iterator[None]:
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield
    finally:
        EventsWorker.drain_all(timeout=30)
