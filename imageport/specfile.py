"""Reading a spec file (YAML, or JSON, which is YAML): strict and bounded.

PyYAML's ``safe_load`` keeps the last of two equal keys, follows any nesting
until Python's recursion limit, and expands aliases without bound. A spec is
a small, flat document typed by a person, so this loader refuses:

- a **duplicate key** in any mapping (which one was meant?);
- nesting deeper than ``MAX_DEPTH`` (32) collections (a spec needs about 5);
- a document larger than ``MAX_BYTES`` (1 MiB), or not UTF-8;
- anchors/aliases (``&a`` / ``*a``): a spec gains nothing from them and an
  alias chain can expand exponentially after parsing.

Every refusal is an ``InputError`` naming the file and the 1-based line:
``spec.yaml:7: duplicate key 'name' (first at line 3)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

from imageport.errors import InputError

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32


class _Refused(yaml.MarkedYAMLError):
    pass


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader with duplicate-key, depth and alias checks (``compose_node`` is the recursive step)."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise _Refused(problem="aliases (*name) are not allowed in a spec", problem_mark=mark)
        if self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            if self._depth >= MAX_DEPTH:
                raise _Refused(
                    problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=self.peek_event().start_mark
                )
            self._depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                mark = key_node.start_mark
                raise ConstructorError(problem="a mapping key must be a plain value", problem_mark=mark) from None
            if first is not None:
                raise _Refused(
                    problem=f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _code(character: object) -> str:
    return f"U+{character:04X}" if isinstance(character, int) else repr(character)


def loads(text: str, source: str) -> Any:
    """Parse ``text`` (named ``source`` in errors) by the rules above."""
    if len(text.encode()) > MAX_BYTES:
        raise InputError(f"{source}: the spec is larger than {MAX_BYTES // 1024} KiB")
    loader = None
    try:
        loader = _SpecLoader(text)  # the reader refuses control characters already here
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p) if exc.problem else str(exc)
        raise InputError(f"{source}{line}: {problem}") from None
    except yaml.reader.ReaderError as exc:  # a control character or bad encoding: a position, no mark
        line = text[: exc.position].count("\n") + 1
        raise InputError(f"{source}:{line}: character {_code(exc.character)} is not allowed in YAML") from None
    finally:
        if loader is not None:
            loader.dispose()


def load(path: Path) -> Any:
    """Read and parse the spec file at ``path``."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the spec ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise InputError(f"{path}: the spec is larger than {MAX_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: the spec is not UTF-8 (byte {exc.start})") from None
    return loads(text, str(path))
