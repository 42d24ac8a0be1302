"""The users file: names, roles and bcrypt hashes, readable by its owner only.

JSON (``{"users": [{"name", "role", "hash"}]}``) so an admin can read it; written to a temporary name
in the same folder with mode 0600, then renamed over the old one, so a crash never leaves half a file
and the gateway (which re-reads it when its mtime changes) never sees one. bcrypt (salted, slow,
maintained) hashes the passwords; bcrypt reads at most 72 bytes, so a longer password is refused
rather than silently cut.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imageport.access.roles import Role
from imageport.errors import InputError

USERS_FILE_ENV = "IMAGEPORT_USERS_FILE"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # no ':' (basic auth splits there), no spaces
MAX_PASSWORD_BYTES = 72  # bcrypt's limit
MIN_PASSWORD_CHARS = 8
ROUNDS = 12  # bcrypt's default cost; the gateway caches a verified credential, so only logins pay it


def default_path() -> Path:
    """``$IMAGEPORT_USERS_FILE``, else ``imageport-users.json`` in Prefect's home (the server's state)."""
    if explicit := os.environ.get(USERS_FILE_ENV):
        return Path(explicit)
    home = os.environ.get("PREFECT_HOME") or str(Path.home() / ".prefect")
    return Path(home) / "imageport-users.json"


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    hash: str


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise InputError(f"user name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-' (no ':' or spaces)")
    return name


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise InputError(f"role {text!r}: one of {', '.join(r.value for r in Role)}") from None


def hash_password(password: str, rounds: int = ROUNDS) -> str:
    import bcrypt

    raw = password.encode()
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputError(f"password: at least {MIN_PASSWORD_CHARS} characters")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise InputError(f"password: at most {MAX_PASSWORD_BYTES} bytes (bcrypt reads no more)")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds)).decode()


def password_matches(user: User, password: str) -> bool:
    import bcrypt

    raw = password.encode()
    return len(raw) <= MAX_PASSWORD_BYTES and bcrypt.checkpw(raw, user.hash.encode())


def load(path: Path) -> dict[str, User]:
    """Every user of the file (none if it does not exist); a file others can read is refused."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"users file {path}: readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
    try:
        entries = json.loads(path.read_text())["users"]
        users = [User(check_name(e["name"]), parse_role(e["role"]), str(e["hash"])) for e in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"users file {path}: not a users file ({exc})") from None
    return {u.name: u for u in users}


def save(path: Path, users: dict[str, User]) -> None:
    """Write all users: temporary file (0600) in the same folder, flushed, then renamed over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"users": [{"name": u.name, "role": u.role.value, "hash": u.hash} for u in users.values()]}
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(body, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add(path: Path, name: str, role: Role, password: str) -> User:
    users = load(path)
    if check_name(name) in users:
        raise InputError(f"user {name!r} exists in {path} (use `imageport users set-role` or remove it first)")
    users[name] = User(name, role, hash_password(password))
    save(path, users)
    return users[name]


def remove(path: Path, name: str) -> None:
    users = load(path)
    if users.pop(name, None) is None:
        raise InputError(f"user {name!r}: not in {path}")
    save(path, users)


def set_role(path: Path, name: str, role: Role) -> User:
    users = load(path)
    if name not in users:
        raise InputError(f"user {name!r}: not in {path}")
    users[name] = User(name, role, users[name].hash)
    save(path, users)
    return users[name]
