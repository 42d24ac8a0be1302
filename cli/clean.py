"""``imageport clean PATH|smb://CONNECTOR/folder``: remove what dead runs left next to their outputs."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from cli.locations import located
from cli.options import JsonFlag
from cli.output import console, emit_json, emit_table, reports_errors
from imageport.disks.leftovers import clean_folder
from imageport.errors import InputError


@reports_errors
def clean(
    folder: Annotated[str, typer.Argument(help="A local directory or smb://CONNECTOR/folder")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed or restored")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List and remove stale temporary files (partials, their sidecars, lock files of dead runs) in FOLDER.

    A file whose output a live run is writing is listed as in use and kept; the old file of a
    replace that was killed half-way gets its name back."""
    if "://" not in folder and not os.path.isdir(folder):
        raise InputError(f"{folder}: no such directory")
    with located(folder) as (fs, path):
        report = clean_folder(fs.output_store(), "" if path in (".", "") else path, dry_run=dry_run)
    if as_json:
        emit_json(report.model_dump())
        return
    if not report.files:
        console.print(f"{report.folder}: no leftovers", highlight=False)
        return
    rows = [(f.name, f.state, f.owner or "") for f in report.files]
    emit_table(f"{report.folder}{' (dry run)' if report.dry_run else ''}", ["file", "state", "owner"], rows)
