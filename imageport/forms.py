"""JSON schemas shaped for the Prefect UI's run forms (the default UI, ``prefect-ui-library``).

The UI builds a form from a deployment's parameter schema (``src/schemas/`` of
prefect-ui-library). What it renders, and what makes it give up and show a raw
JSON box instead:

- a property's ``$ref`` is merged with the property; ``allOf`` is merged;
- ``anyOf`` becomes a row of buttons, one per option, labelled by the option's
  (definition's) ``title``, else its ``format``, else its type (``str``,
  ``None``): so union members need friendly titles;
- otherwise ``type`` picks the control: string (text, or a select with
  ``enum``), boolean, integer, number, array (of ``items``), object (its
  ``properties``), null. ``oneOf`` is not known: with no ``type`` the property
  is a JSON box, and so is an object without ``properties`` (a ``dict``);
- ``anyOf`` of objects sharing keys cannot be used: see ``KindForm``;
- properties appear in ``position`` order (0 for all nested ones: the schema's
  own order), required ones unmarked, the rest "(Optional)".

So pydantic's defaults are reshaped here, once for every model (``shape_model``
is the models' ``json_schema_extra``): the disk reference unions are one form
with a ``kind`` select (``KindForm``), an optional string is a
plain string property with no default (clearing the box omits it; Prefect's
server-side check still allows ``null`` for a property that is neither
required nor defaulted), an optional enum is a string select (whose ``enum``
has no ``null``: left empty it must be omitted, as ``models.as_parameters`` does), required
properties come first, and every property has a title and a description.
``tests/prefect_layer/test_forms.py`` walks each deployment's schema the way
the UI does and fails on any JSON box.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# ``X | Y`` is types.UnionType from 3.10; the agent bundle imports this module on 3.9 too.
_UNION_TYPE = getattr(types, "UnionType", typing.Union)

# Titles where the field name alone reads badly.
TITLES = {
    "timeout_s": "Timeout (seconds)",
    "vm": "VM",
    "sku": "SKU",
    "md5": "MD5",
    "expected_md5": "Expected MD5",
    "misa": "MISA",
    "mcsio": "MCS I/O",
    "pvs_install_version": "PVS install version",
    "enable_rdp": "Enable RDP",
    "pvs_site": "PVS site",
    "pvs_store": "PVS store",
    "hyper_v_generation": "Hyper-V generation",
    "os_type": "OS type",
    "ce_logs": "CE logs",
    "vdisk_name": "vDisk name",
    "xd_reconfigure": "VDA /reconfigure switches",
    "kind": "Kind",
}
CONST_DESCRIPTION = "Set by the choice above."


def field_title(name: str) -> str:
    return TITLES.get(name) or name.replace("_", " ").capitalize()


def _enum_of(annotation: Any) -> type[enum.Enum] | None:
    """The enum class inside ``E | None`` (or ``Annotated[E | None, ...]``), if that is what the field is."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _enum_of(args[0])
    if typing.get_origin(annotation) in (typing.Union, _UNION_TYPE):
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return _enum_of(members[0])
        return None
    return annotation if isinstance(annotation, type) and issubclass(annotation, enum.Enum) else None


def _is_null(option: dict[str, Any]) -> bool:
    return option.get("type") == "null"


def plain_union(prop: dict[str, Any]) -> None:
    """``oneOf`` + ``discriminator`` (pydantic's tagged union) -> ``anyOf``; nested optional unions flattened."""
    if "oneOf" in prop:
        prop["anyOf"] = prop.pop("oneOf")
        prop.pop("discriminator", None)
    options = prop.get("anyOf")
    if not options:
        return
    flat: list[dict[str, Any]] = []
    for option in options:
        if "oneOf" in option or "anyOf" in option:
            inner = dict(option)
            plain_union(inner)
            flat.extend(inner["anyOf"])
        else:
            flat.append(option)
    for option in flat:
        if _is_null(option):
            option.setdefault("title", "None")
    prop["anyOf"] = flat


def _shape_property(name: str, prop: dict[str, Any], field: Any) -> dict[str, Any]:
    plain_union(prop)
    options = prop.get("anyOf")
    if options and len(options) == 2 and _is_null(options[1]) and prop.get("default", ...) is None:
        enum_class = _enum_of(field.annotation) if field is not None else None
        (kept,) = options[:1]
        if kept.get("type") in ("string", "object"):  # optional text or reference: empty means omitted
            prop.pop("anyOf")
            prop.pop("default")
            prop.update({k: v for k, v in kept.items() if k != "title"})
        elif enum_class is not None:  # an optional choice: a select, nothing chosen means omitted
            prop.pop("anyOf")
            prop.pop("default")
            prop.update(type="string", enum=[member.value for member in enum_class])
    if "items" in prop and isinstance(prop["items"], dict):
        plain_union(prop["items"])
    if not prop.get("title") or prop["title"] == name.replace("_", " ").title():
        prop["title"] = field_title(name)
    if "const" in prop:
        prop.setdefault("description", CONST_DESCRIPTION)
    return prop


def shape_model(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """pydantic ``json_schema_extra`` hook: one model's schema, shaped for the UI (see the module docstring)."""
    properties: dict[str, dict[str, Any]] = schema.get("properties", {})
    fields = model.model_fields
    shaped = {name: _shape_property(name, prop, fields.get(name)) for name, prop in properties.items()}
    required = set(schema.get("required", []))
    schema["properties"] = {k: shaped[k] for k in shaped if k in required} | {
        k: shaped[k] for k in shaped if k not in required
    }


class NameValuePairs:
    """A ``dict[str, str]`` shown as a list of name/value rows (the UI has no map control; a dict is a JSON box).

    Accepted both ways (a mapping, or a list of ``{name, value}``); serialized to JSON as the list, which is
    what the form sends back.
    """

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "array",
            "items": {
                "type": "object",
                "title": "Tag",
                "properties": {
                    "name": {"type": "string", "title": "Name", "description": "Tag name."},
                    "value": {"type": "string", "title": "Value", "description": "Tag value."},
                },
                "required": ["name", "value"],
                "additionalProperties": False,
            },
        }

    @staticmethod
    def parse(value: Any) -> Any:
        if isinstance(value, list):
            pairs: dict[str, Any] = {}
            for item in value:
                if not isinstance(item, dict) or set(item) != {"name", "value"}:
                    raise ValueError("each tag is {name, value}")
                if item["name"] in pairs:
                    raise ValueError(f"tag {item['name']!r} is given twice")
                pairs[item["name"]] = item["value"]
            return pairs
        return value

    @staticmethod
    def dump(value: dict[str, str]) -> list[dict[str, str]]:
        return [{"name": k, "value": v} for k, v in value.items()]


class FixedField:
    """A flow parameter's model with one field fixed by the deployment: pre-set (a read-only value in the
    form, refused by the server's schema check if changed) and filled in when left out."""

    def __init__(self, name: str, value: enum.Enum, description: str) -> None:
        self.name, self.value, self.description = name, value, description

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        found = handler(schema)
        definition = handler.resolve_ref_schema(found)
        properties = definition["properties"]
        properties.pop(self.name, None)
        properties[self.name] = {
            "type": "string", "const": self.value.value, "default": self.value.value,
            "title": field_title(self.name), "description": self.description,
        }  # fmt: skip
        definition["required"] = [r for r in definition.get("required", []) if r != self.name]
        return found

    def fill(self, value: Any) -> Any:
        if isinstance(value, dict) and self.name not in value:
            return {**value, self.name: self.value.value}
        return value


class KindForm:
    """On a union of references told apart by ``kind``: one form, a ``kind`` select and every member's fields.

    Not ``anyOf``: the UI picks the shown choice from a value by counting its keys that each choice
    has, first choice winning ties (``getInitialIndexForSchemaPropertyAnyOfValue``). Every reference has
    ``kind`` and ``connector`` (and ``share``/``local`` the very same keys), so choosing "Local file"
    snaps back to the first choice as soon as its defaults arrive -- seen in Chromium. pydantic still
    validates the member by ``kind`` and refuses a field that kind does not have, naming it.
    """

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        found = handler(schema)
        members = [handler.resolve_ref_schema(option) for option in found.get("oneOf") or found.get("anyOf") or []]
        kinds = [member["properties"]["kind"]["const"] for member in members]
        uses = "; ".join(
            f"{kind} ({member['title']}): " + ", ".join(k for k in member["properties"] if k != "kind")
            for kind, member in zip(kinds, members, strict=True)
        )
        properties: dict[str, Any] = {
            "kind": {"type": "string", "enum": kinds, "title": "Kind", "description": f"What it is. {uses}."}
        }
        for member in members:
            for key, prop in member["properties"].items():
                if key not in properties:
                    properties[key] = {k: v for k, v in prop.items() if k not in ("default", "const")}
        if "connector" in properties and any("default" in m["properties"].get("connector", {}) for m in members):
            properties["connector"]["description"] += " (local: 'local' if left empty)"
        return {"type": "object", "properties": properties, "required": ["kind"]}


class Titled:
    """A title for a type where pydantic has none to give (a union member: the UI labels the choice by it)."""

    def __init__(self, title: str) -> None:
        self.title = title

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "title": self.title}
