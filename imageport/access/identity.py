"""Checking a credential: the ``IdentityProvider`` seam and its users-file implementation.

The gateway asks a provider "who is this name + password?" and nothing else, so an external identity
provider (LDAP, OIDC token introspection) can later replace the users file without touching the
gateway or the allow-list. bcrypt costs a quarter of a second by design; a browser session sends
dozens of API calls a page, so a verified credential is remembered (by its SHA-256, never in clear)
until the users file changes.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Protocol

from imageport.access import users
from imageport.access.roles import Identity


class IdentityProvider(Protocol):
    def authenticate(self, name: str, password: str) -> Identity | None:
        """The identity for this credential, or None when it is wrong (unknown name or password)."""

    def has_users(self) -> bool:
        """Whether anyone can log in at all (a server without users must stay on loopback)."""


class UsersFileProvider:
    """Users from ``imageport users``' file, re-read whenever its mtime or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, users.User] = {}
        self._verified: dict[bytes, Identity] = {}

    def _current(self) -> dict[str, users.User]:
        try:
            status = self.path.stat()
            stamp: tuple[int, int] | None = (status.st_mtime_ns, status.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._users, self._stamp = users.load(self.path), stamp
                self._verified = {}  # a removed user or a changed role must take effect at once
            return self._users

    def has_users(self) -> bool:
        return bool(self._current())

    def authenticate(self, name: str, password: str) -> Identity | None:
        known = self._current()
        key = hashlib.sha256(f"{name}\0{password}".encode()).digest()
        if (hit := self._verified.get(key)) is not None:
            return hit
        user = known.get(name)
        if user is None or not users.password_matches(user, password):
            return None
        identity = Identity(user.name, user.role)
        with self._lock:
            self._verified[key] = identity
        return identity
