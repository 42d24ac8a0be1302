"""Prefect's side of the redaction (``imageport.redaction``): its log handlers, including the API
log handler that carries run logs to the UI, and the SDK loggers the adapters use.

Imported by ``blocks/__init__.py``, so it is in force wherever the Prefect layer runs: flows,
tasks, workers, ``imageport serve`` and the CLI's connector commands. The core record factory
already redacts every record at creation; the handler filters also cover records built without it
(``logging.makeLogRecord``), and ``sys.excepthook``/``threading.excepthook`` print redacted
tracebacks.
"""

from __future__ import annotations

from prefect.logging.configuration import ensure_logging_setup

from imageport import redaction

LOGGERS = (
    "prefect",
    "prefect.flow_runs",
    "prefect.task_runs",
    "prefect.server",
    "azure",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.identity",
    "msal",
    "urllib3",
    "smbprotocol",
    "smbclient",
    "pyVmomi",
)


def install() -> None:
    ensure_logging_setup()  # Prefect's handlers exist first, so the filter can go on them
    redaction.install_log_redaction(*LOGGERS)
    redaction.install_excepthooks()


install()
