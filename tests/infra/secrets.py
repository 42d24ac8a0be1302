"""Leak detection for planted secrets: use ``assert_no_secret_in`` wherever a test can see output.

A secret leaks if any of its forms — the value itself, URL-encoded (``quote``/``quote_plus``),
URL-decoded, JSON- or repr-escaped — appears in a text (str or bytes). ``SIG_IN_CLEAR`` catches a SAS
signature whose value the test does not know (a grant the platform handed out).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

SIG_IN_CLEAR = re.compile(r"\bsig(?:=|%3D)(?!REDACTED)[^&\s'\"<>]+", re.IGNORECASE)


def secret_forms(secret: str) -> set[str]:
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        unquote(secret),
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
    }


def sas_signature(url: str) -> str:
    """The ``sig`` value of a SAS URL, decoded."""
    return dict(parse_qsl(urlsplit(url).query))["sig"]


def find_leaks(secrets: Iterable[str], *texts: str | bytes, where: str = "output") -> list[str]:
    found = []
    forms = {form for secret in secrets for form in secret_forms(secret)}
    for i, text in enumerate(texts):
        data = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        for form in sorted(forms):
            if form in data:
                found.append(f"{where}[{i}] holds {form[:4]}… ({data[max(0, data.index(form) - 60) :][:140]!r})")
        match = SIG_IN_CLEAR.search(data)
        if match:
            found.append(f"{where}[{i}] holds a SAS signature in clear: {data[max(0, match.start() - 60) :][:140]!r}")
    return found


def assert_no_secret_in(secrets: Iterable[str], *texts: str | bytes, where: str = "output") -> None:
    """Fail, naming where, if any form of any secret (or any clear SAS signature) is in ``texts``."""
    leaks = find_leaks(list(secrets), *texts, where=where)
    assert not leaks, "secret leaked:\n" + "\n".join(leaks)


def files_under(*roots: Path) -> Iterator[tuple[str, bytes]]:
    """(path, content) of every file under ``roots``: sidecars, manifests, checkpoints, results."""
    for root in roots:
        if root.is_file():
            yield str(root), root.read_bytes()
        elif root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and path.stat().st_size < 64 * 2**20:
                    yield str(path), path.read_bytes()


def assert_no_secret_in_files(secrets: Iterable[str], *roots: Path) -> None:
    secrets = list(secrets)
    leaks = [leak for path, data in files_under(*roots) for leak in find_leaks(secrets, data, where=path)]
    assert not leaks, "secret leaked into files:\n" + "\n".join(leaks)


class LogRecorder(logging.Handler):
    """Every log record of the process, formatted as a handler would (message, traceback, stack)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def __enter__(self) -> LogRecorder:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)
