"""The ``sh`` code blocks of the docs, as their command lines: the tests run the docs' commands as written."""

from __future__ import annotations

import re
from pathlib import Path


def sh_blocks(path: Path) -> list[list[str]]:
    """The ``sh`` code blocks of a Markdown file, as their command lines (comments and blank lines dropped)."""
    blocks = re.findall(r"```sh\n(.*?)```", path.read_text(), flags=re.S)
    return [[line.strip() for line in b.splitlines() if line.strip() and not line.strip().startswith("#")]
            for b in blocks]  # fmt: skip


def block_with(path: Path, needle: str) -> list[str]:
    """The one ``sh`` block of ``path`` with a line containing ``needle``."""
    (block,) = [b for b in sh_blocks(path) if any(needle in line for line in b)]
    return block
