"""Refusals in the terms of whoever asked: a run from a flow (the UI, the REST API, a schedule) names the
spec field, not the CLI flag.

The core words its refusals for the CLI (``use --force to replace it``); ``FLAG_FIELDS`` is the one
mapping from those flags to spec fields, applied to the message where a refusal leaves a flow. The field is
named under where the form shows it: ``prepare.overwrite`` in a port (the stage's options), ``spec.overwrite``
in a single-stage flow. The run ends ``Failed`` with that one line as its state message (no traceback: see
``ImageportError.expected``).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

from prefect.states import Failed

from imageport.errors import ImageportError

# CLI flag -> the spec field it sets (under the stage's options), or, unprefixed, what it is in a flow.
FLAG_FIELDS = {"--force": "overwrite", "--wait-lock": "wait_lock", "--new-version": "new_version"}
FLAG_TERMS = {"--from": "format (on the image's reference)", "--size": "size", "--run": "run_id"}
_FLAG = re.compile(
    r"(?<![\w-])(?P<use>[Uu]se )?(?P<flag>" + "|".join(map(re.escape, [*FLAG_FIELDS, *FLAG_TERMS]))
    + r")(?![\w-])(?: \(\w+\))?"
)


def in_spec_terms(message: str, where: str) -> str:
    """``message`` with each CLI flag replaced by the field at ``where`` (``prepare``, ``spec``, or ``""``)."""

    def field(match: re.Match[str]) -> str:
        flag = match["flag"]
        if flag in FLAG_TERMS:
            named = FLAG_TERMS[flag]
        else:
            named = f"{where}.{FLAG_FIELDS[flag]}" if where else FLAG_FIELDS[flag]
        return f"{'S' if match['use'][0] == 'U' else 's'}et {named}" if match["use"] else named

    return _FLAG.sub(field, message)


def mark_stage(exc: ImageportError, where: str) -> ImageportError:
    """Remember the first place a refusal came from (a port's stage), for ``refused``."""
    if getattr(exc, "spec_where", None) is None:
        exc.spec_where = where  # type: ignore[attr-defined]
    return exc


def refused(exc: ImageportError, where: str) -> Any:
    """The run's final state for an expected refusal: Failed, with the message in spec terms."""
    message = in_spec_terms(str(exc), getattr(exc, "spec_where", None) or where)
    return Failed(message=f"{type(exc).__name__}: {message}", data=exc)


def refusals_as_state(where: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Under ``@flow``: an ``ImageportError`` escaping the flow body ends the run as ``refused`` says."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def body(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except ImageportError as exc:
                return refused(exc, where)

        # Resolved here: Prefect builds its parameter model from the signature with the wrapper's globals.
        body.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
        return body

    return decorate
