"""Names and paths typed by users: one set of rules for the CLI, specs and flows.

Every vDisk name, every path inside a store, share or connector root, and
every free-text value that ends up in generated PowerShell passes through
exactly one of these rules, whether it came from a command-line option, a
CLI location string (``smb://CONNECTOR/folder/file``), a YAML spec or a
flow building an output name:

- **vDisk names** (``vdisk_name``), PVS's rules: 1 to 52 characters
  (``Import-PvsDisk -DiskLocatorName``); letters, digits, space, ``-``, ``_``
  and ``.``, starting with a letter or digit; not a Windows device name
  (CON, PRN, AUX, NUL, COM0-9, LPT0-9, also with an extension: ``CON.x``);
  no trailing dot or space (Windows strips them); no trailing ``.N`` (it
  would read as version N of another vDisk).
- **Paths inside a root** (``store_path``): relative, ``/`` or ``\\``
  separators (both are separators: the far side is Windows); no ``..``
  segment, no absolute path, no drive letter, UNC or device path (``C:``,
  ``\\\\server``, ``\\\\?\\``), no NUL or other control character, no
  character Windows forbids in a file name (``<>:"|?*``; ``:`` would also
  open an NTFS alternate stream), no segment a Windows server would alter
  (trailing dot or space, device names). At most 1024 characters, 255 per
  segment. ``.`` segments are dropped; ``.`` or ``""`` alone is the root itself.
- **Free text** (``free_text``: PVS site and store names): 1 to 128
  characters, no control or line-break characters (values are quoted as
  PowerShell literals, see ``platforms/pvs/powershell.py``, and also named
  in comment lines, which a line break would end).

Each rule raises ``ValueError`` with the rule, starting with the offending
value, so pydantic reports it under the field's dotted path; ``check``
raises the same text as an ``InputError`` naming a CLI field.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Callable

from imageport.errors import InputError

MAX_VDISK_NAME = 52  # Import-PvsDisk -DiskLocatorName accepts 1 to 52 characters
MAX_PATH = 1024
MAX_SEGMENT = 255
MAX_FREE_TEXT = 128

_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{p}{i}" for p in ("COM", "LPT") for i in "0123456789¹²³"
}
_VDISK_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]*")
_WINDOWS_FORBIDDEN = set('<>:"|?*')
_VERSION_SUFFIX = re.compile(r"\.\d+$")


def shown(value: str, limit: int = 60) -> str:
    """``value`` as it appears in a refusal: quoted, escaped to one line, cut when long."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."


def _is_control(ch: str) -> bool:
    # Cc: C0/C1 controls incl. NUL, CR, LF, NEL; Zl/Zp: U+2028/U+2029 line and paragraph separators.
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def one_line(text: str) -> str:
    """``text`` with every control or line-break character escaped (``\\n``, ``\\x00``): one line of output."""
    return "".join(ch.encode("unicode_escape").decode() if _is_control(ch) else ch for ch in text)


def _device_name(segment: str) -> bool:
    return segment.split(".")[0].rstrip(" ").upper() in _DEVICES


def vdisk_name(value: str) -> str:
    """A vDisk name (no extension) by PVS's rules; see the module docstring."""
    if not 1 <= len(value) <= MAX_VDISK_NAME:
        raise ValueError(f"{shown(value)} has {len(value)} characters; PVS allows 1 to {MAX_VDISK_NAME}")
    if not _VDISK_CHARS.fullmatch(value):
        raise ValueError(
            f"{shown(value)}: a vDisk name may use only letters, digits, space, '-', '_' and '.', "
            "starting with a letter or digit"
        )
    if value.endswith((".", " ")):
        raise ValueError(f"{shown(value)} ends with a dot or a space, which Windows strips")
    if _VERSION_SUFFIX.search(value):
        raise ValueError(f"{shown(value)} ends in .<number>, which would read as a PVS version file")
    if _device_name(value):
        raise ValueError(f"{shown(value)} is a reserved Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9)")
    return value


def _segment_problem(segment: str) -> str | None:
    if segment == "..":
        return "'..' segments are not allowed (paths stay inside their root)"
    if len(segment) > MAX_SEGMENT:
        return f"a path segment has more than {MAX_SEGMENT} characters"
    if any(_is_control(ch) for ch in segment):
        return "contains a NUL or another control character"
    bad = sorted(set(segment) & _WINDOWS_FORBIDDEN)
    if bad:
        return f"contains {''.join(bad)!r}, which Windows forbids in file names (drive letters, streams)"
    if segment.endswith((".", " ")) and segment != ".":
        return f"segment {shown(segment)} ends with a dot or a space, which Windows strips"
    if _device_name(segment):
        return f"segment {shown(segment)} is a reserved Windows device name"
    return None


def store_path(value: str) -> str:
    """A path confined to its store, share or connector root, normalized to ``/`` separators.

    Returns ``""`` for the root itself (``.`` or ``""``), so the result validates again unchanged (specs
    travel between processes as JSON); see the module docstring for the rules.
    """
    if len(value) > MAX_PATH:
        raise ValueError(f"{shown(value)}: the path has {len(value)} characters, more than {MAX_PATH}")
    unified = value.replace("\\", "/")
    if unified.startswith("/"):
        raise ValueError(
            f"{shown(value)} is absolute (or UNC); give a path relative to the store, share or connector root"
        )
    segments = unified.split("/")
    for segment in segments:
        problem = _segment_problem(segment)
        if problem:
            raise ValueError(f"{shown(value)}: {problem}")
    return "/".join(s for s in segments if s not in ("", "."))


def free_text(value: str) -> str:
    """A short display name (PVS site or store): printable, one line."""
    if not 1 <= len(value) <= MAX_FREE_TEXT:
        raise ValueError(f"{shown(value)} has {len(value)} characters; use 1 to {MAX_FREE_TEXT}")
    if any(_is_control(ch) for ch in value):
        raise ValueError(f"{shown(value)} contains a line break, NUL or another control character")
    return value


def no_nul(value: str) -> str:
    """A local path given on the command line: any path the OS accepts, which excludes NUL."""
    if "\x00" in value:
        raise ValueError(f"{shown(value)} contains a NUL byte, which no file name can hold")
    return value


def check(field: str, value: str, rule: Callable[[str], str]) -> str:
    """Apply ``rule`` to a value given as ``field`` (e.g. ``--name``); refusals are ``InputError``."""
    try:
        return rule(value)
    except ValueError as exc:
        raise InputError(f"{field}: {exc}") from None


PREPARED_SUFFIX = "-prepared"


def prepared_name(name: str) -> str:
    """The one naming rule of a prepared copy: ``NAME-prepared`` (a disk, a snapshot's copy, a VM's disk)."""
    return f"{name}{PREPARED_SUFFIX}"


def prepared_path(path: str) -> str:
    """A file's prepared copy beside it: ``dir/NAME-prepared.EXT``."""
    stem, ext = posixpath.splitext(path)
    return f"{prepared_name(stem)}{ext}"
