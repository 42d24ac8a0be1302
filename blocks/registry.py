"""Saved connectors: create, find by name across kinds, list, delete.

Connector names are unique across kinds (the CLI and specs refer to a
connector by name alone), so ``save_connector`` refuses a name another kind
already uses.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from pydantic import ValidationError

from blocks.connectors import CONNECTOR_KINDS
from imageport.errors import ConnectorExists, ConnectorNotFound, InputError
from imageport.models import connector_name, describe_validation_error


def connector_class(kind: str) -> type[Block]:
    try:
        return CONNECTOR_KINDS[kind]
    except KeyError:
        raise InputError(f"unknown connector kind {kind!r}: use one of {', '.join(CONNECTOR_KINDS)}") from None


def build_connector(kind: str, fields: dict[str, Any]) -> Block:
    cls = connector_class(kind)
    try:
        return cls(**fields)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, f"{kind} connector")) from None


def find_connector(name: str) -> tuple[str, Block]:
    """Load the connector called ``name`` whatever its kind."""
    for kind, cls in CONNECTOR_KINDS.items():
        try:
            return kind, cls.load(name)
        except ValueError as exc:
            if "Unable to find block document" not in str(exc):
                raise
        except RuntimeError as exc:  # saved before a rule existed: say which field breaks it, never its value
            if not isinstance(exc.__cause__, ValidationError):
                raise
            what = f"saved {kind} connector {name!r} (recreate it with --overwrite)"
            raise InputError(describe_validation_error(exc.__cause__, what)) from None
    raise ConnectorNotFound(f"no connector named {name!r} (see 'imageport connector list')")


def save_connector(kind: str, name: str, fields: dict[str, Any], overwrite: bool = False) -> Block:
    try:
        connector_name(name)
    except ValueError as exc:
        raise InputError(f"name: {exc}") from None
    block = build_connector(kind, fields)
    try:
        existing_kind, _ = find_connector(name)
    except ConnectorNotFound:
        existing_kind = None
    if existing_kind is not None and (existing_kind != kind or not overwrite):
        hint = "" if existing_kind != kind else " (use --overwrite to replace it)"
        raise ConnectorExists(f"a {existing_kind} connector named {name!r} exists already{hint}")
    register_connector_types()
    block.save(name, overwrite=overwrite)
    return block


def register_connector_types() -> None:
    """Make every connector kind known to the server (idempotent, ~0.1 s each)."""
    for cls in CONNECTOR_KINDS.values():
        cls.register_type_and_schema()


def list_connectors() -> list[tuple[str, str]]:
    """(kind, name) of every saved connector, sorted."""
    register_connector_types()
    found: list[tuple[str, str]] = []
    with get_client(sync_client=True) as client:
        for kind, cls in CONNECTOR_KINDS.items():
            docs = client.read_block_documents_by_type(cls.get_block_type_slug(), include_secrets=False)
            found.extend((kind, doc.name) for doc in docs if doc.name and not doc.is_anonymous)
    return sorted(found, key=lambda kn: (kn[1], kn[0]))


def delete_connector(name: str) -> str:
    kind, block = find_connector(name)
    type(block).delete(name)
    return kind


def public_fields(block: Block) -> dict[str, Any]:
    """The connector's settings with every secret masked, safe to print."""
    data = block.model_dump(mode="json")
    secret_fields = set(type(block)._to_block_schema().fields.get("secret_fields", []))
    return {k: ("********" if k in secret_fields and v is not None else v) for k, v in data.items()}
