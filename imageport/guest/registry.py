"""Offline registry access through the appliance's hivex calls (one hive open at a time).

Values are typed: REG_DWORD as int, REG_SZ/EXPAND_SZ as str (UTF-16LE with
the terminating NUL on disk), REG_MULTI_SZ as list[str], anything else bytes.
Key paths are backslash-separated below the hive root; lookups are
case-insensitive, as Windows' are.

hivex has no "delete one value": a value is removed by recreating its key
with the remaining values, which is done only for keys without subkeys.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Union

from imageport.errors import GuestError
from imageport.guest.errors import translate_guestfs_errors

REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ, REG_QWORD = 1, 2, 3, 4, 7, 11
TYPE_NAMES = {REG_SZ: "REG_SZ", REG_EXPAND_SZ: "REG_EXPAND_SZ", REG_BINARY: "REG_BINARY", REG_DWORD: "REG_DWORD",
              REG_MULTI_SZ: "REG_MULTI_SZ", REG_QWORD: "REG_QWORD"}  # fmt: skip

Value = Union[int, str, list[str], bytes]  # noqa: UP007 (evaluated at import; the agent runs on 3.9)


def encode(kind: int, value: Value) -> bytes:
    if kind == REG_DWORD:
        return struct.pack("<I", int(value))  # type: ignore[arg-type]
    if kind == REG_QWORD:
        return struct.pack("<Q", int(value))  # type: ignore[arg-type]
    if kind in (REG_SZ, REG_EXPAND_SZ):
        return (str(value) + "\0").encode("utf-16-le")
    if kind == REG_MULTI_SZ:
        return ("".join(v + "\0" for v in value) + "\0").encode("utf-16-le")  # type: ignore[union-attr]
    return bytes(value)  # type: ignore[arg-type]


def decode(kind: int, data: bytes) -> Value:
    if kind == REG_DWORD and len(data) >= 4:
        return int(struct.unpack_from("<I", data)[0])
    if kind == REG_QWORD and len(data) >= 8:
        return int(struct.unpack_from("<Q", data)[0])
    if kind in (REG_SZ, REG_EXPAND_SZ):
        return data.decode("utf-16-le", "replace").split("\0", 1)[0]
    if kind == REG_MULTI_SZ:
        return [s for s in data.decode("utf-16-le", "replace").split("\0") if s]
    return bytes(data)


@dataclass(frozen=True)
class RegValue:
    kind: int
    value: Value


class OpenHive:
    """The hive at ``path`` in the guest, open through the appliance (commit to write)."""

    def __init__(self, g: Any, path: str, write: bool) -> None:
        self.g = g
        self.path = path
        self.write = write
        with translate_guestfs_errors(f"open hive {path}"):
            g.hivex_open(path, write=write)
            self.root = g.hivex_root()

    def close(self, commit: bool) -> None:
        with translate_guestfs_errors(f"{'commit' if commit else 'close'} hive {self.path}"):
            if commit and self.write:
                self.g.hivex_commit(None)
            self.g.hivex_close()

    # --- reading --------------------------------------------------------------------

    def node(self, key: str) -> int | None:
        node = self.root
        for part in filter(None, key.split("\\")):
            child = self.g.hivex_node_get_child(node, part)
            if not child:
                return None
            node = child
        return node

    def subkeys(self, key: str = "") -> list[str]:
        node = self.node(key)
        if node is None:
            return []
        return [self.g.hivex_node_name(child["hivex_node_h"]) for child in self.g.hivex_node_children(node)]

    def values(self, key: str) -> dict[str, RegValue]:
        return self.values_or_none(key) or {}

    def values_or_none(self, key: str) -> dict[str, RegValue] | None:
        """The key's values, or None when the key does not exist."""
        node = self.node(key)
        if node is None:
            return None
        found = {}
        for item in self.g.hivex_node_values(node):
            handle = item["hivex_value_h"]
            name = self.g.hivex_value_key(handle)
            kind = self.g.hivex_value_type(handle)
            found[name] = RegValue(kind, decode(kind, self.g.hivex_value_value(handle)))
        return found

    def get(self, key: str, name: str) -> RegValue | None:
        values = self.values(key)
        return next((v for n, v in values.items() if n.lower() == name.lower()), None)

    # --- writing --------------------------------------------------------------------

    def ensure(self, key: str) -> int:
        node = self.root
        for part in filter(None, key.split("\\")):
            child = self.g.hivex_node_get_child(node, part)
            node = child if child else self.g.hivex_node_add_child(node, part)
        return node

    def set(self, key: str, name: str, kind: int, value: Value) -> None:
        with translate_guestfs_errors(f"set {self.path}\\{key}\\{name}"):
            self.g.hivex_node_set_value(self.ensure(key), name, kind, encode(kind, value))

    def delete_value(self, key: str, name: str) -> None:
        node = self.node(key)
        if node is None:
            return
        if self.g.hivex_node_children(node):
            raise GuestError(f"{self.path}\\{key}: cannot delete value {name!r} from a key with subkeys")
        keep = {n: v for n, v in self.values(key).items() if n.lower() != name.lower()}
        parent = self.g.hivex_node_parent(node)
        key_name = self.g.hivex_node_name(node)
        with translate_guestfs_errors(f"delete {self.path}\\{key}\\{name}"):
            self.g.hivex_node_delete_child(node)
            node = self.g.hivex_node_add_child(parent, key_name)
            for value_name, value in keep.items():
                self.g.hivex_node_set_value(node, value_name, value.kind, encode(value.kind, value.value))
