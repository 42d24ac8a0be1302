"""Terminal output shared by every command: tables or JSON, and error reporting."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from imageport.errors import ImageportError, InputError
from imageport.redaction import redact

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def reports_errors(func: F) -> F:
    """Turn imageport errors into one clear line on stderr and an exit code, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except ImageportError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(EXIT_FAILED) from None
        except Exception as exc:
            if (line := api_refusal(exc)) is None:
                raise
            err_console.print(f"[red]error:[/red] {line}", highlight=False)
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper  # type: ignore[return-value]


def api_refusal(exc: BaseException) -> str | None:
    """One line for the Prefect API refusing the caller (401: credential, 403: role); None for anything else.

    The one place the CLI reads Prefect's HTTP errors (httpx's, which Prefect's client raises): a command
    that never loaded httpx cannot have got one, so it is not imported here.
    """
    httpx = sys.modules.get("httpx")
    if httpx is None or not isinstance(exc, httpx.HTTPStatusError):
        return None
    response = exc.response
    if response.status_code not in (401, 403):
        return None
    try:
        detail = response.json().get("detail") or response.json().get("exception_message")
    except ValueError:
        detail = response.text[:200]
    if response.status_code == 401:
        return (
            f"the Prefect API at {response.url.host}:{response.url.port} refused the credential: {detail} "
            "(set PREFECT_API_AUTH_STRING=user:password)"
        )
    return f"the Prefect API refused this: {detail}"


def emit_json(data: Any) -> None:
    sys.stdout.write(redact(json.dumps(data, indent=2, default=str)) + "\n")


def emit_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], whole: Sequence[str] = ()
) -> None:
    """A table; the ``whole`` columns (ids to copy) are never cut or wrapped, the others give way."""
    table = Table(title=redact(title), title_justify="left")  # a title may name a SAS URL
    cells = [[redact(str(cell)) for cell in row] for row in rows]
    for i, column in enumerate(columns):
        if column in whole:
            widest = max([len(column), *(len(row[i]) for row in cells)])
            table.add_column(column, no_wrap=True, min_width=widest, overflow="ignore")
        else:
            table.add_column(column)
    for row in cells:
        table.add_row(*row)
    console.print(table)


def emit_mapping(title: str, mapping: dict[str, Any]) -> None:
    emit_table(title, ["field", "value"], [(k, "" if v is None else v) for k, v in mapping.items()])


@contextlib.contextmanager
def progress_reporter(description: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback: a live bar on a terminal, a plain line every 5 s otherwise."""
    description = redact(description)  # it may name a SAS URL
    if err_console.is_terminal:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task(description, total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total or None)

            yield update
        return
    last = [0.0, -1.0]  # time of the last line, bytes it showed
    started = time.monotonic()

    def line(done: int, total: int) -> None:
        now = time.monotonic()
        finished = bool(total) and done >= total
        if done != last[1] and (now - last[0] >= 5 or finished):
            last[0], last[1] = now, done
            rate = done / max(now - started, 1e-6) / 2**20
            pct = f"{100 * done / total:5.1f}%" if total else "     "
            err_console.print(f"{description}: {pct} {done / 2**20:,.0f} MiB, {rate:,.0f} MiB/s", highlight=False)

    yield line


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'127G', '127GiB', '20480M', '1073741824' -> bytes (binary units)."""
    m = _SIZE.match(text)
    if not m:
        raise InputError(f"--size {text!r}: use a number of bytes or a size like 127G, 20480M, 1T")
    number, unit = float(m.group(1)), m.group(2).upper()
    return int(number * 1024 ** " KMGT".index(unit or " "))
