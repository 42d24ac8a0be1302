"""``parse_model``: the one entry point for untrusted input."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ValidationError,
)

from imageport import names
from imageport.errors import InputError

# --- parsing untrusted input -------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


_PLAIN_KEY = re.compile(r"[\w-]{1,64}")


def _loc_part(part: int | str) -> str:
    """A field path step; an unknown key that is not a plain word is quoted, so it cannot break the line."""
    text = str(part)
    return text if _PLAIN_KEY.fullmatch(text) else names.shown(text)


def describe_validation_error(exc: ValidationError, what: str) -> str:
    lines = [f"invalid {what}:"]
    for err in exc.errors():
        loc = ".".join(_loc_part(p) for p in err["loc"]) or "(top level)"
        msg = names.one_line(err["msg"].removeprefix("Value error, "))  # pydantic may quote the input
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_model(model: type[M], data: Any, what: str | None = None) -> M:
    """Validate ``data`` as ``model``; raise ``InputError`` naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, what or model.__name__)) from None
