"""``imageport users add|remove|list|set-role`` and ``imageport server`` (Prefect behind the gateway).

The users file is ``--file``, else ``$IMAGEPORT_USERS_FILE``, else ``imageport-users.json`` in
``$PREFECT_HOME``; the server re-reads it when it changes, so no restart is needed after an edit.
Passwords come from a prompt (typed twice) or, for scripts, one line on stdin (``--password-stdin``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.output import console, emit_json, emit_table, reports_errors
from imageport.access import users
from imageport.errors import InputError

app = typer.Typer(help="Users and roles of the Prefect server (administrator, porter, worker).", no_args_is_help=True)

FileOption = Annotated[
    Path | None, typer.Option("--file", help="The users file (default $IMAGEPORT_USERS_FILE or $PREFECT_HOME)")
]
RoleArg = Annotated[str, typer.Option("--role", help="administrator, porter (Image Porter) or worker")]


def _path(file: Path | None) -> Path:
    return file if file is not None else users.default_path()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise InputError("--password-stdin: no password on stdin")
        return line.rstrip("\r\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@app.command("add")
@reports_errors
def add(
    name: str,
    role: RoleArg,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
    file: FileOption = None,
) -> None:
    """Add a user with a role (the password is stored as a bcrypt hash only)."""
    path = _path(file)
    parsed = users.parse_role(role)
    users.check_name(name)
    user = users.add(path, name, parsed, _password(password_stdin))
    console.print(f"user {user.name}: {user.role.value} ({path})", highlight=False)


@app.command("remove")
@reports_errors
def remove(name: str, file: FileOption = None) -> None:
    """Remove a user: their credential stops working at the server's next request."""
    path = _path(file)
    users.remove(path, name)
    console.print(f"user {name}: removed ({path})", highlight=False)


@app.command("set-role")
@reports_errors
def set_role(name: str, role: str, file: FileOption = None) -> None:
    """Give a user another role."""
    path = _path(file)
    user = users.set_role(path, name, users.parse_role(role))
    console.print(f"user {user.name}: {user.role.value} ({path})", highlight=False)


@app.command("list")
@reports_errors
def list_users(as_json: Annotated[bool, typer.Option("--json")] = False, file: FileOption = None) -> None:
    """Every user and their role (never a hash)."""
    rows = [[u.name, u.role.value] for u in users.load(_path(file)).values()]
    if as_json:
        emit_json([{"name": n, "role": r} for n, r in rows])
    else:
        emit_table(f"users ({_path(file)})", ["name", "role"], rows)


@reports_errors
def server(
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs users")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API and UI")] = 4200,
    file: FileOption = None,
) -> None:
    """Prefect's server (API, UI, schedules) behind imageport's roles: one process, as `prefect server start`."""
    from deployments.server import run_server

    run_server(host, port, _path(file))
