"""The ``imageport`` command line. Sub-command groups live in their own modules."""

from __future__ import annotations

import os

# Set before Prefect is imported anywhere: no analytics from the CLI, ever.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import logging

import typer

from cli import (
    ahv,
    clean,
    connectors,
    copy_image,
    disk,
    engine,
    guest,
    jobs,
    publish,
    reap,
    snapshot,
    upload,
    users,
    vsphere,
    xenserver,
)
from imageport import redaction

# Every edge of the process, before any command runs: stdout/stderr (tables, JSON, echo and the
# tracebacks the interpreter or typer print), log records, exception hooks. Prefect's handlers get
# the filter too once the Prefect layer is imported (blocks/redaction.py).
redaction.install()

# Loading a connector emits a Prefect event; at exit the events worker warns "Still processing
# items" while it flushes it. Noise for a CLI user: the flush itself still happens.
logging.getLogger("EventsWorker").setLevel(logging.ERROR)

app = typer.Typer(
    help="imageport: move VDI master images between vSphere, Azure, PVS stores and local disks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(connectors.app, name="connector")
app.add_typer(disk.app, name="disk")
app.add_typer(vsphere.app, name="vsphere")
app.add_typer(xenserver.app, name="xenserver")
app.add_typer(ahv.app, name="ahv")
app.add_typer(engine.app, name="engine")
app.command("upload")(upload.upload)
app.command("copy")(copy_image.copy)
app.command("publish")(publish.publish)
app.command("snapshot")(snapshot.snapshot)
app.command("prepare")(guest.prepare)
app.command("diagnostics")(guest.diagnostics)
app.command("finalize")(guest.finalize)
app.command("reap")(reap.reap)
app.command("clean")(clean.clean)
app.command("run")(jobs.run)
app.command("port")(jobs.port)
app.command("serve")(jobs.serve)
app.add_typer(jobs.app, name="jobs")
app.add_typer(users.app, name="users")
app.command("server")(users.server)


@app.command()
def version() -> None:
    """Print the imageport version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("imageport"))


if __name__ == "__main__":
    app()
