"""Location text shared by the adapters: ``scheme://CONNECTOR/rest?key=value``, losslessly escaped.

An adapter's ``format`` and ``parse`` are exact inverses. Values are written as they are except
for the characters that would change how the text splits, which become ``%XX`` (UTF-8): ``%``
itself, ``?`` and ``#`` everywhere, ``/`` inside one segment (a connector, a resource group, a
datastore), and ``&`` and ``=`` inside a query value. Parsing undoes any ``%XX``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from pydantic import ValidationError

from imageport.errors import InputError
from imageport.names import shown

ALWAYS = "%?#"
SEGMENT = ALWAYS + "/"
QUERY = ALWAYS + "&="


def escape(value: str, special: str = ALWAYS) -> str:
    """``value`` with each character of ``special`` as ``%XX``."""
    return "".join("".join(f"%{b:02X}" for b in ch.encode()) if ch in special else ch for ch in value)


def unescape(value: str) -> str:
    return unquote(value, errors="strict") if "%" in value else value


class Location:
    """One location text split into its connector, the rest of its path and its query."""

    def __init__(self, text: str, scheme: str, field: str, shape: str) -> None:
        self.text, self.field, self.shape = text, field, shape
        if not text.startswith(f"{scheme}://"):
            raise self.refuse()
        body = text.removeprefix(f"{scheme}://")
        body, _, query = body.partition("?")
        connector, _, self.rest = body.partition("/")
        self.connector = self.decode(connector)
        self.query = self._query(query) if query else {}

    def refuse(self, why: str = "") -> InputError:
        return InputError(f"{self.field} {shown(self.text)}: {why + '; ' if why else ''}use {self.shape}")

    def decode(self, value: str) -> str:
        try:
            return unescape(value)
        except UnicodeDecodeError:
            raise self.refuse("a %XX escape is not UTF-8") from None

    def segments(self, count: int) -> list[str]:
        """The rest as exactly ``count`` non-empty segments, the last one taking any further ``/``."""
        parts = self.rest.split("/", count - 1)
        if len(parts) != count or not all(parts):
            raise self.refuse()
        return [self.decode(p) for p in parts]

    def _query(self, query: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for pair in query.split("&"):
            key, sep, value = pair.partition("=")
            if not sep or key in found:
                raise self.refuse(f"query {shown(pair)} is not one key=value, or repeats a key")
            found[key] = self.decode(value)
        return found

    def options(self, allowed: tuple[str, ...]) -> dict[str, str]:
        unknown = sorted(set(self.query) - set(allowed))
        if unknown:
            raise self.refuse(f"unknown option {shown(unknown[0])} (known: {', '.join(allowed) or 'none'})")
        return dict(self.query)

    def model(self, cls: type, **fields: Any) -> Any:
        """``cls(**fields)``; a refusal names the argument and each field's rule."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()
            )
            raise InputError(f"{self.field} {shown(self.text)}: {problems}") from None


def query_text(**values: str | None) -> str:
    """``?k=v&...`` of the values that are set, in the given order (``""`` when none is)."""
    pairs = [f"{k}={escape(v, QUERY)}" for k, v in values.items() if v is not None]
    return "?" + "&".join(pairs) if pairs else ""


VM_OPTIONS = ("disk", "snapshot")


def parse_vm_disk(text: str, scheme: str, field: str, shape: str, ref_type: type) -> Any:
    """``SCHEME://CONNECTOR/VM[?disk=D&snapshot=S]``: a VM's disk on a hypervisor (vSphere, XenServer)."""
    loc = Location(text, scheme, field, shape)
    options = loc.options(VM_OPTIONS)
    return loc.model(ref_type, connector=loc.connector, vm=loc.decode(loc.rest), **options)


def format_vm_disk(scheme: str, ref: Any) -> str:
    """The canonical text ``parse_vm_disk`` reads back."""
    query = query_text(disk=ref.disk, snapshot=ref.snapshot)
    return f"{scheme}://{escape(ref.connector, SEGMENT)}/{escape(ref.vm, ALWAYS)}{query}"
