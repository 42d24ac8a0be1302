"""What the default Prefect UI makes of a parameter schema, as prefect-ui-library's ``src/schemas`` decides it.

``form_problems(schema)`` walks a deployment's ``parameter_openapi_schema`` the way the UI's form does and
lists every place a user would meet a raw JSON box or an unreadable form:

- ``SchemaFormProperty``: ``$ref`` merged with the property (the property's own keys win), ``allOf`` merged;
- ``SchemaFormPropertyAnyOf``: one button per option, labelled ``title`` / ``format`` / type name
  (``getSchemaPropertyLabel``) -- a class name or a bare ``dict``/``str`` is no label a user can read;
  the option shown is re-chosen from the value after every change (most keys in common, first on a tie),
  so options whose defaults another, earlier option also has snap back to it;
- ``SchemaFormPropertyInput``: the control comes from ``type`` alone; no ``type`` (``oneOf``, a list of
  types, nothing) is ``SchemaFormPropertyUnknown``, a JSON box, and so is an ``object`` without
  ``properties`` (``SchemaFormPropertyObject``);
- ``SchemaFormProperties``: shown in ``position`` order (stable; nested properties all 0), so required
  properties must come first in the schema's own order; a property with no ``title`` gets its key.
"""

from __future__ import annotations

import re
from typing import Any

KNOWN_TYPES = {"null", "string", "boolean", "integer", "number", "array", "object"}
TYPE_LABELS = {"null": "None", "string": "str", "boolean": "bool", "integer": "int", "number": "float",
               "array": "list", "object": "dict"}  # fmt: skip
CLASS_NAME = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+$")  # ShareDiskFormat, ExportOptions


def _definition(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    return schema["definitions"][ref.removeprefix("#/definitions/")]


def resolved(schema: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    """``mergeSchemaPropertyDefinition`` and the ``allOf`` merge: what the UI renders for ``prop``."""
    if "$ref" in prop:
        rest = {k: v for k, v in prop.items() if k != "$ref"}
        prop = {**resolved(schema, _definition(schema, prop["$ref"])), **rest}
    if "allOf" in prop:
        merged: dict[str, Any] = {}
        for part in prop["allOf"]:
            merged.update(resolved(schema, part))
        prop = {**merged, **{k: v for k, v in prop.items() if k != "allOf"}}
    return prop


def option_label(schema: dict[str, Any], option: dict[str, Any]) -> str:
    """``getOptionLabelForProperty``: a ``$ref`` option is labelled by its definition alone."""
    shown = _definition(schema, option["$ref"]) if "$ref" in option else option
    return shown.get("title") or shown.get("format") or TYPE_LABELS.get(shown.get("type", ""), "")


def _chosen_after_defaults(schema: dict[str, Any], options: list[dict[str, Any]], index: int) -> int:
    """The choice the UI shows once choice ``index``'s fields have sent their defaults
    (``getInitialIndexForSchemaPropertyAnyOfValue``: most keys in common, first one on a tie)."""
    members = [resolved(schema, o) for o in options]
    keys = [k for k, p in members[index].get("properties", {}).items() if "default" in p]
    if members[index].get("type") != "object" or not keys:
        return index
    best, best_count = index, 0
    for i, member in enumerate(members):
        count = len(set(keys) & set(member.get("properties", {})))
        if count > best_count:
            best, best_count = i, count
    return best


def form_problems(schema: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    _object(schema, schema, "", problems, top=True)
    return problems


def _object(schema: dict[str, Any], prop: dict[str, Any], path: str, problems: list[str], top: bool = False) -> None:
    properties = prop.get("properties")
    if not properties:
        problems.append(f"{path or '(parameters)'}: an object without properties is a JSON box")
        return
    required = set(prop.get("required", []))
    order = sorted(properties, key=lambda k: properties[k].get("position", 0))
    seen_optional = False
    for key in order:
        if key in required and seen_optional and not top:
            problems.append(f"{path}.{key}: required, but shown after optional fields")
        seen_optional = seen_optional or key not in required
        _property(schema, properties[key], f"{path}.{key}" if path else key, problems)


def _property(schema: dict[str, Any], prop: dict[str, Any], path: str, problems: list[str]) -> None:
    if not prop.get("title"):
        problems.append(f"{path}: no title")
    if not prop.get("description") and "$ref" not in prop:
        problems.append(f"{path}: no description")
    shown = resolved(schema, prop)
    if "$ref" in prop and not shown.get("description"):
        problems.append(f"{path}: no description")
    if "anyOf" in shown:
        options = shown["anyOf"]
        labels = [option_label(schema, o) for o in options]
        if [o.get("type") for o in options if "$ref" not in o] in (["string", "null"], ["null", "string"]):
            problems.append(f"{path}: a nullable string needs a str/None toggle before it can be typed")
        for label in labels:
            if not label or CLASS_NAME.match(label) or label in ("dict", "list", "str"):
                problems.append(f"{path}: union choice labelled {label!r}")
        if len(set(labels)) != len(labels):
            problems.append(f"{path}: union choices share a label: {labels}")
        for index in range(len(options)):
            chosen = _chosen_after_defaults(schema, options, index)
            if chosen != index:
                problems.append(f"{path}: choosing {labels[index]!r} snaps back to {labels[chosen]!r}")
        rest = {k: v for k, v in shown.items() if k not in ("anyOf", "title", "description")}
        for option, label in zip(options, labels, strict=True):
            _control(schema, {**resolved(schema, option), **rest}, f"{path}<{label}>", problems)
        return
    _control(schema, shown, path, problems)


def _control(schema: dict[str, Any], shown: dict[str, Any], path: str, problems: list[str]) -> None:
    kind = shown.get("type")
    if "anyOf" in shown:  # an option that is itself a union: rendered by the same component
        _property(schema, {"title": "-", "description": "-", **shown}, path, problems)
    elif not isinstance(kind, str) or kind not in KNOWN_TYPES:
        what = "oneOf" if "oneOf" in shown else repr(kind)
        problems.append(f"{path}: type {what} falls back to a JSON box")
    elif kind == "object":
        _object(schema, shown, path, problems)
    elif kind == "array":
        items = shown.get("items")
        if not isinstance(items, dict):
            problems.append(f"{path}: array items {items!r} fall back to a JSON box")
        else:
            _property(schema, {"title": "item", "description": "item", **items}, f"{path}[]", problems)
