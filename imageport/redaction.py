"""Secrets never leave the process in text: one redaction, applied at every output edge.

``redact(text)`` removes

- SAS tokens: a URL query string holding ``sig=`` goes as a whole (its
  ``se``/``sp``/``sv`` are harmless, but one rule is easier to trust), and any
  stray ``sig=`` value (also ``sig%3D``, or ``'sig': '...'`` in a dict repr);
- ``AccountKey=`` and ``SharedAccessSignature=`` in connection strings;
- a password in a URL's userinfo (``scheme://user:PASSWORD@host``);
- ``Bearer`` tokens;
- every *known secret*: a value registered with ``register_secret`` — the
  passwords and client secrets of connectors as they are loaded, and the
  signatures of SAS URLs as they are opened — in its raw, URL-encoded and
  escaped forms.

The edges that apply it: the CLI's streams (``RedactingStream`` on
``sys.stdout``/``sys.stderr``, which also carries every traceback the
interpreter or typer prints), every log record (``install_log_redaction``: a
record factory plus ``RedactionFilter`` on the handlers), ``sys.excepthook``
and ``threading.excepthook``, ``--json`` and tables, Prefect artifacts and
stage results (``redact_data``), and the sidecar files written beside images.

Decision: values shorter than ``MIN_SECRET_LENGTH`` are not registered as
known secrets — replacing every ``pass`` in every message would shred the
output and hide nothing an attacker could not guess; the patterns still apply.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterable
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

REDACTED = "REDACTED"
MIN_SECRET_LENGTH = 6

# A URL query string (from '?' to the next blank or quote) that carries a SAS signature.
_SAS_QUERY = re.compile(r"\?[^\s'\"<>?]*?\bsig(?:=|%3D)[^\s'\"<>]*", re.IGNORECASE)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (_SAS_QUERY, f"?{REDACTED}-SAS"),
    (re.compile(r"(\bsig(?:=|%3D))[^&\s'\"<>]+", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"""(["']sig["']\s*[:=]\s*["'])[^"']+""", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"((?:AccountKey|SharedAccessSignature)=)[^;\s'\"]+", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"(://[^/\s:@'\"]*:)[^@/\s'\"]+@"), rf"\1{REDACTED}@"),
    (re.compile(r"(\bBearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE), rf"\1{REDACTED}"),
]

_lock = threading.Lock()
_known: set[str] = set()
_known_pattern: re.Pattern[str] | None = None


def _forms(value: str) -> set[str]:
    """The ways a secret shows up in text: itself, URL-encoded, JSON- and repr-escaped."""
    return {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        repr(value)[1:-1],
    }


def register_secret(value: str | None) -> None:
    """Remember ``value`` as a secret: from now on ``redact`` removes it wherever it appears."""
    global _known_pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        new = _forms(value) - _known
        if not new:
            return
        _known.update(new)
        alternatives = sorted(_known, key=len, reverse=True)  # longest first: no partial leftovers
        _known_pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def register_sas(url: str) -> None:
    """Register the signature of a SAS URL (raw as typed, and decoded) as a known secret."""
    query = urlsplit(url).query
    for part in query.split("&"):
        key, _, raw = part.partition("=")
        if key.lower() == "sig":
            register_secret(raw)
    for key, value in parse_qsl(query):
        if key.lower() == "sig":
            register_secret(value)


def redact(text: str) -> str:
    """``text`` without SAS signatures, account keys, URL passwords, tokens and known secrets."""
    known = _known_pattern
    if known is not None:
        text = known.sub(REDACTED, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_data(data: Any) -> Any:
    """``data`` (dicts, lists, strings: a result, an artifact, a sidecar) with every string redacted."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact_data(k): redact_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact_data(v) for v in data)
    return data


def redact_exception(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> str:
    return redact("".join(traceback.format_exception(exc_type, exc, tb)))


# --- logging ---------------------------------------------------------------------------


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact a log record in place: its message, traceback and stack. Idempotent."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: let the handler report it, but never with a secret
        message = f"{record.msg} {record.args}"
    record.msg, record.args = redact(message), None
    if record.exc_info and getattr(record.exc_info[1], "expected", False) is True:
        record.exc_info, record.exc_text = None, None  # an expected refusal: its message says it all
    if record.exc_info and not record.exc_text and record.exc_info[1] is not None:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    # The formatted text stays; the live exception goes, so no handler can render it (or its locals) again.
    record.exc_info = None
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


class RedactionFilter(logging.Filter):
    """A handler filter that redacts every record passing through (it never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


FILTER = RedactionFilter()
_factory_installed = False


def add_filter_to_handlers(loggers: Iterable[logging.Logger]) -> None:
    for logger in loggers:
        logger.addFilter(FILTER)  # records logged on this logger itself
        for handler in logger.handlers:
            handler.addFilter(FILTER)  # records propagated from its children


def install_log_redaction(*logger_names: str) -> None:
    """Redact every log record: at creation (a record factory, so handlers added later are covered
    too) and on the handlers of the root logger, of ``logger_names`` and of every logger so far."""
    global _factory_installed
    with _lock:
        if not _factory_installed:
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                return redact_record(previous(*args, **kwargs))

            logging.setLogRecordFactory(factory)
            _factory_installed = True
    existing = [logging.getLogger(name) for name in logging.Logger.manager.loggerDict]
    named = [logging.getLogger(name) for name in logger_names]
    add_filter_to_handlers([logging.getLogger(), *named, *existing])


# --- streams and tracebacks ----------------------------------------------------------


class RedactingStream(io.TextIOBase):
    """A text stream that redacts what is written to it, line by line (so a secret written in
    pieces is still caught), before passing it on. Everything else is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self.wrapped = stream
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            if "\n" in self._pending:
                complete, _, self._pending = self._pending.rpartition("\n")
                self.wrapped.write(redact(complete + "\n"))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self.wrapped.write(redact(self._pending))
                self._pending = ""
        self.wrapped.flush()

    def isatty(self) -> bool:
        return self.wrapped.isatty()

    def fileno(self) -> int:
        return self.wrapped.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.wrapped, "encoding", "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.wrapped, "errors", None)

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":  # writing bytes underneath would bypass the redaction
            raise AttributeError(name)
        return getattr(self.wrapped, name)


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(redact_exception(exc_type, exc, tb))
    sys.stderr.flush()


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        _excepthook(args.exc_type, args.exc_value, args.exc_traceback)


def install_excepthooks() -> None:
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook


def install_stream_redaction() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (once): every print, echo, table and traceback is redacted."""
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)


def install(*logger_names: str) -> None:
    """Every edge of a process at once: streams, log records, exception hooks (idempotent)."""
    install_stream_redaction()
    install_log_redaction(*logger_names)
    install_excepthooks()
