"""``imageport connector ...``: create, list, show, test and delete saved connectors.

Connectors are Prefect blocks; ``blocks`` (and so Prefect, ~2 s to import) is
imported inside the commands, so the other command groups start fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.output import console, emit_json, emit_mapping, emit_table, reports_errors
from imageport.errors import InputError

app = typer.Typer(help="Manage connectors: saved platform and share settings (Prefect blocks).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


KINDS = ("fileshare", "vsphere", "ahv", "azure", "local", "xenserver", "blob")

SECRET_SOURCES = (
    "leave it out or give {f}=- (hidden prompt, or one line on standard input when piped), "
    "{f}=@PATH (read from a file), or {f}=env:VARIABLE (read from that environment variable)"
)


def _parse_fields(kind: str, assignments: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs. A secret field is never taken literally from the command line (shell history,
    ``ps``): it is read at a hidden prompt or from stdin (left out, or ``-``), a file (``@PATH``) or an
    environment variable (``env:NAME``)."""
    from blocks.registry import connector_class

    cls = connector_class(kind)
    known = set(cls.model_fields)
    secret_fields = cls._to_block_schema().fields.get("secret_fields", [])
    fields: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InputError(f"{item!r}: settings are given as KEY=VALUE")
        if key not in known:
            raise InputError(f"{key!r} is not a {kind} connector setting; settings: {', '.join(sorted(known))}")
        fields[key] = _secret_from(key, value) if key in secret_fields and value != "-" else value
    for secret in secret_fields:
        if fields.get(secret) == "-" or secret not in fields:
            # Optional secrets (e.g. client_secret, needed only for some auth choices) may be skipped.
            value = _read_secret(secret, required=cls.model_fields[secret].is_required())
            if value is not None:
                fields[secret] = value
    return fields


def _secret_from(field: str, value: str) -> str:
    """A secret field's value from where ``value`` points: ``@PATH`` or ``env:NAME``; anything else is refused."""
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{field}=@{path}: cannot read the file ({exc.strerror or exc})") from None
        secret = text.removesuffix("\n").removesuffix("\r")
        if not secret:
            raise InputError(f"{field}=@{path}: the file is empty")
        return secret
    if value.startswith("env:"):
        name = value.removeprefix("env:")
        secret = os.environ.get(name, "") if name else ""
        if not secret:
            raise InputError(f"{field}=env:{name}: that environment variable is not set (or empty)")
        return secret
    # Never echo ``value``: it is the secret itself.
    raise InputError(
        f"{field}: a secret is not accepted on the command line (shell history, ps); " + SECRET_SOURCES.format(f=field)
    )


def _read_secret(field: str, required: bool) -> str | None:
    # Secrets on the command line end up in shell history and `ps`; read them instead,
    # one per line on standard input when it is piped, else at a hidden prompt.
    if sys.stdin.isatty():
        value = typer.prompt(
            field if required else f"{field} (Enter to skip)",
            hide_input=True,
            default="" if not required else None,
            show_default=False,
        )
    else:
        value = sys.stdin.readline().rstrip("\n")
    if not value and required:
        raise InputError(f"{field}: no value given (type it at the prompt, or pipe it on standard input)")
    return value or None


@app.command("create")
@reports_errors
def create(
    kind: Annotated[str, typer.Argument(help=f"Connector kind: {', '.join(KINDS)}")],
    name: Annotated[str, typer.Argument(help="Connector name (lowercase letters, digits, '-')")],
    settings: Annotated[
        list[str] | None,
        typer.Argument(
            help="KEY=VALUE settings. Secrets: left out or KEY=- (hidden prompt, or stdin when piped), "
            "KEY=@PATH (a file) or KEY=env:VARIABLE; never literally"
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing connector of the same kind")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Save a connector. Example: imageport connector create fileshare store server=pvs01 share=Store username=svc"""
    from blocks.registry import public_fields, save_connector

    block = save_connector(kind, name, _parse_fields(kind, settings or []), overwrite=overwrite)
    if as_json:
        emit_json({"kind": kind, "name": name, "settings": public_fields(block)})
    else:
        console.print(f"saved {kind} connector [bold]{name}[/bold]")


@app.command("list")
@reports_errors
def list_(as_json: JsonFlag = False) -> None:
    """List saved connectors."""
    from blocks.registry import list_connectors

    rows = list_connectors()
    if as_json:
        emit_json([{"kind": k, "name": n} for k, n in rows])
    else:
        emit_table("connectors", ["name", "kind"], [(n, k) for k, n in rows])


@app.command("show")
@reports_errors
def show(name: str, as_json: JsonFlag = False) -> None:
    """Show a connector's settings (secrets masked)."""
    from blocks.registry import find_connector, public_fields

    kind, block = find_connector(name)
    fields = public_fields(block)
    if as_json:
        emit_json({"kind": kind, "name": name, "settings": fields})
    else:
        emit_mapping(f"{kind} connector {name}", fields)


@app.command("test")
@reports_errors
def test(name: str, as_json: JsonFlag = False) -> None:
    """Check that a connector really works: log in, read, write where it should."""
    from blocks.registry import find_connector

    kind, block = find_connector(name)
    facts = block.build().check()
    if as_json:
        emit_json({"kind": kind, "name": name, "ok": True, "checks": facts})
    else:
        for fact in facts:
            console.print(f"[green]ok[/green] {fact}", highlight=False)


@app.command("delete")
@reports_errors
def delete(name: str) -> None:
    """Delete a saved connector."""
    from blocks.registry import delete_connector

    kind = delete_connector(name)
    console.print(f"deleted {kind} connector {name}")
