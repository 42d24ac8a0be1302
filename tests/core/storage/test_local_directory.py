from __future__ import annotations

from pathlib import Path

import pytest

from imageport.errors import InputError, StorageNotFound
from imageport.storage.local import LocalDirectoryConfig


def test_check_creates_the_root_and_proves_it_writable(tmp_path: Path) -> None:
    root = tmp_path / "images" / "store"
    facts = LocalDirectoryConfig(root=str(root)).build().check()
    assert root.is_dir() and list(root.iterdir()) == []
    assert any("writable" in f for f in facts)


def test_a_file_in_place_of_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StorageNotFound):
        LocalDirectoryConfig(root=str(tmp_path / "f")).build().check()


def test_paths_cannot_escape_the_root(tmp_path: Path) -> None:
    directory = LocalDirectoryConfig(root=str(tmp_path)).build()
    assert directory.path("a/b.vhdx") == (tmp_path / "a/b.vhdx").resolve()
    (tmp_path / "link").symlink_to("/etc")
    for bad in ("../x", "link/passwd"):
        with pytest.raises(InputError):
            directory.path(bad)
