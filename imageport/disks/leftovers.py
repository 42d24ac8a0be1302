"""What dead runs left next to their outputs, and removing it safely.

For an output ``NAME`` a run may leave (see ``staged`` and ``ownership``):

- ``NAME.partial-XXXXXXXX``: a plain temporary file;
- ``NAME.imageport-partial`` and ``NAME.imageport-partial.json``: a resumable
  partial file and its checkpoint sidecar;
- ``NAME.imageport-replaced``: the old file, moved aside while a replace on a
  share was half done (the new one may not be in place);
- ``NAME.imageport-lock``: the lock file with the owner record.

Whoever holds ``NAME``'s lock knows the rest belongs to no live run: the next
run on ``NAME`` calls ``recover`` right after taking the lock, and
``clean_folder`` (``imageport clean``) does the same for every output of a
folder whose lock it can take. A half-done replace is rolled back: the old file
gets its name back when the new one is not in place, and is deleted when it is.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from imageport.disks.ownership import (
    ASIDE_SUFFIX,
    LOCK_SUFFIX,
    PARTIAL_SUFFIX,
    STATE_SUFFIX,
    OutputStore,
    lock_name,
    parse_record,
    record,
)
from imageport.errors import OutputBusy

_PLAIN = re.compile(r"^(?P<final>.+)\.partial-[0-9a-f]{8}$")
_SUFFIXES = (PARTIAL_SUFFIX + STATE_SUFFIX, PARTIAL_SUFFIX, ASIDE_SUFFIX, LOCK_SUFFIX)

State = Literal["removed", "restored", "in use", "stale", "would restore"]


class Leftover(BaseModel):
    name: str
    output: str  # the final name it belongs to
    state: State
    owner: str | None = None  # "host, pid N, since T" from the lock's owner record


class CleanReport(BaseModel):
    folder: str
    dry_run: bool
    files: list[Leftover]


def output_of(name: str) -> str | None:
    """The output a leftover ``name`` belongs to, or ``None`` when it is no leftover."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    plain = _PLAIN.match(name)
    return plain.group("final") if plain else None


def recover(store: OutputStore, final: str, keep: str | None = None) -> list[Leftover]:
    """Remove what dead runs left for ``final`` (the caller holds its lock); ``keep`` is a
    resumable partial the caller will judge itself (with its sidecar)."""
    folder, base = store.split(final)
    spared = {lock_name(final)} | ({keep, keep + STATE_SUFFIX} if keep else set())
    done: list[Leftover] = []
    for name in store.listdir(folder):
        path = store.join(folder, name)
        if output_of(name) != base or path in spared:
            continue
        if name.endswith(ASIDE_SUFFIX) and not store.exists(final):
            store.rename(path, final)  # the replace never finished: the old file is the output again
            done.append(Leftover(name=name, output=base, state="restored"))
            continue
        store.remove(path)
        done.append(Leftover(name=name, output=base, state="removed"))
    return done


def clean_folder(store: OutputStore, folder: str, dry_run: bool = False) -> CleanReport:
    """Every leftover in ``folder``: removed (or, ``dry_run``, listed as stale) unless a live run
    holds its output's lock, in which case it is listed as in use and kept."""
    outputs: dict[str, list[str]] = {}
    for name in store.listdir(folder):
        final = output_of(name)
        if final is not None:
            outputs.setdefault(final, []).append(name)
    files: list[Leftover] = []
    for base, names in sorted(outputs.items()):
        final = store.join(folder, base)
        held, owner = store.holder(lock_name(final))
        if not held and not dry_run:
            try:
                lock = store.lock(lock_name(final), record(""), wait=False)
            except OutputBusy:
                held, owner = True, None  # a run started meanwhile
            else:
                try:
                    files += recover(store, final)
                finally:
                    lock.release()
                dead, _ = parse_record(lock.previous)
                if base + LOCK_SUFFIX in names:
                    files.append(Leftover(name=base + LOCK_SUFFIX, output=base, state="removed", owner=_who(dead)))
                continue
        for name in sorted(names):
            if held:
                state: State = "in use"
            elif name.endswith(ASIDE_SUFFIX) and not store.exists(final):
                state = "would restore"
            else:
                state = "stale"
            files.append(Leftover(name=name, output=base, state=state, owner=_who(owner)))
    return CleanReport(folder=store.display(folder), dry_run=dry_run, files=files)


def _who(owner: object) -> str | None:
    describe = getattr(owner, "describe", None)
    return describe() if describe else None
