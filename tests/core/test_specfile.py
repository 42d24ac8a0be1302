"""Spec files: duplicate keys, depth, size and aliases refused, naming the file and line (issue 18, part 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageport import specfile
from imageport.errors import InputError

GOOD = """\
workflow: mcs-to-mcs
source: {kind: local, path: vms/gold.raw}
staging:
  kind: share
  connector: nas
  path: exports/gold.vhdx
targets:
  - disk: {kind: azure-disk, connector: az, resource_group: rg, name: gold}
"""


def refused(text: str, tmp_path: Path) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        specfile.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}:") and "\n" not in message
    return message.removeprefix(f"{path}")


def test_a_good_spec_loads(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD)
    assert specfile.load(path)["staging"]["path"] == "exports/gold.vhdx"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD + "workflow: pvs-to-pvs\n", ":9: duplicate key 'workflow' (first at line 1)"),
        (
            GOOD.replace("  path: exports/gold.vhdx\n", "  path: a\n  path: b\n"),
            ":7: duplicate key 'path' (first at line 6)",
        ),
        ('{"workflow": "a",\n "workflow": "b"}', ":2: duplicate key 'workflow' (first at line 1)"),
        ("targets:\n  - {disk: 1, disk: 2}\n", ":2: duplicate key 'disk'"),
    ],
)
def test_duplicate_keys_are_an_error_naming_the_line(text: str, expected: str, tmp_path: Path) -> None:
    assert refused(text, tmp_path).startswith(expected)


@pytest.mark.parametrize("depth", [specfile.MAX_DEPTH + 1, 50_000])
def test_deep_nesting_is_refused_without_recursion_error(depth: int, tmp_path: Path) -> None:
    assert (
        refused("a: " + "[" * depth + "]" * depth + "\n", tmp_path)
        == f":1: nested more than {specfile.MAX_DEPTH} levels deep"
    )
    block = "".join(" " * i + f"k{i}:\n" for i in range(depth if depth < 1000 else 1000)) + " " * 1000 + "x: 1\n"
    assert "nested more than" in refused(block, tmp_path)


def test_nesting_up_to_the_limit_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    depth = specfile.MAX_DEPTH - 1  # the top-level mapping is one level
    path.write_text("a: " + "[" * depth + "]" * depth + "\n")
    assert specfile.load(path) is not None


def test_size_is_bounded(tmp_path: Path) -> None:
    assert refused("a: " + "x" * specfile.MAX_BYTES + "\n", tmp_path) == ": the spec is larger than 1024 KiB"


def test_aliases_are_refused(tmp_path: Path) -> None:
    lol = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    assert refused(lol, tmp_path) == ":2: aliases (*name) are not allowed in a spec"


def test_syntax_errors_and_control_characters_name_the_line(tmp_path: Path) -> None:
    assert refused("a: 1\nb: [1\n", tmp_path).startswith(":3: while parsing a flow sequence")
    assert refused("a: 1\nb: x\x00y\n", tmp_path) == ":2: character U+0000 is not allowed in YAML"
    (tmp_path / "spec.yaml").write_bytes(b"a: \xff\n")
    with pytest.raises(InputError, match="not UTF-8"):
        specfile.load(tmp_path / "spec.yaml")
