"""``imageport engine``: the compositing engine's own artifacts (the agent bundle every CE runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.output import emit_json, reports_errors

app = typer.Typer(help="The compositing engine's agent bundle.", no_args_is_help=True)


@app.command("bundle")
@reports_errors
def bundle(
    out: Annotated[Path, typer.Option("--out", help="Directory to put the bundle in")] = Path("dist"),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Build (or reuse) the agent bundle of this checkout: one file a CE runs as `python3 BUNDLE JOB.json`."""
    from imageport.engine.bundle import build_bundle

    built = build_bundle(out)
    if as_json:
        emit_json({"path": str(built.path), "sha256": built.sha256, "version": built.version,
                   "protocol": built.protocol})  # fmt: skip
    else:
        typer.echo(f"{built.path}\nsha256 {built.sha256}\nversion {built.version} (protocol {built.protocol})")
