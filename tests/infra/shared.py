"""Expensive, read-only test artefacts built once per test run, however many xdist workers need them.

A session fixture runs once per worker process; for an artefact that costs a libguestfs launch that
would be paid twice under ``pytest -n 2``. ``built_once`` builds it in a folder every worker of the
run sees (the run's common base temp), under an exclusive ``flock``: the first worker builds, the
others wait for it and reuse the result. Without xdist it is just a fresh folder of the session.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DONE = ".built"


def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder shared by every worker of this run (the session's own base temp without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Any]) -> Path:
    """``build(directory)`` run by exactly one worker of the run; every caller gets ``directory`` once built."""
    root = run_root(tmp_path_factory) / f"shared-{name}"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (root / DONE).exists():
                shutil.rmtree(root, ignore_errors=True)  # a worker that died half-way left a partial build
                root.mkdir()
                build(root)
                (root / DONE).touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root
