"""Every CLI location parser, and publish into a real local store, under generated hostile strings (issue 18, part 6).

The command runs in-process (typer's runner: hundreds of examples in seconds); the real console
script is exercised by ``test_hostile_input_cli.py``. Allowed outcomes: a parsed, confined location,
or one clean ``error:`` line with exit 2 — never a traceback, never a file outside the store.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.locations import managed_disk_target, parse_location
from cli.main import app
from imageport.errors import InputError
from imageport.models import AzureDiskRef, DatastoreFileRef, ShareRef
from imageport.names import store_path, vdisk_name
from tests.core.disks.images import MiB, make_raw
from tests.core.platforms.powershell_tokens import statements
from tests.hostile import BOUNDED, SEEDS, hostile_strings

SCHEMES = ["smb://nas/", "smb://", "datastore://vc/DS0/", "datastore://vc/", "azure-disk://az/rg/",
           "azure-snapshot://az/", "sas+", ""]  # fmt: skip


@BOUNDED
@given(st.sampled_from(SCHEMES), hostile_strings)
def test_location_parsers_give_a_confined_reference_or_an_input_error(scheme: str, text: str) -> None:
    location = scheme + text
    try:
        ref = parse_location(location, "SOURCE")
    except InputError as exc:
        assert str(exc).startswith("SOURCE") and "\n" not in str(exc)
        return
    if isinstance(ref, ShareRef | DatastoreFileRef):
        assert store_path(ref.path) == ref.path and ".." not in ref.path.split("/") and "\x00" not in ref.path
    elif isinstance(ref, AzureDiskRef):
        assert "/" not in ref.name and "\x00" not in ref.resource_group + ref.name
    else:
        assert ref == location and "\x00" not in ref  # a local path of the user's own choosing


@BOUNDED
@given(hostile_strings)
def test_the_managed_disk_parser_splits_or_refuses(text: str) -> None:
    try:
        parts = managed_disk_target("azure-disk://" + text)
    except InputError:
        return
    assert len(parts) == 3 and all(parts) and not any("/" in p for p in parts)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_raw(tmp_path_factory.mktemp("hostile") / "gold.raw", 1 * MiB, runs=2, seed=6, max_run=MiB // 4)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@BOUNDED
@given(
    name=st.one_of(st.sampled_from(SEEDS), hostile_strings, st.sampled_from(["Gold", "Win11-Gold", "a b.c_d"])),
    site=st.one_of(st.none(), hostile_strings),
)
def test_publish_with_hostile_names_writes_only_inside_the_store(image: Path, name: str, site: str | None) -> None:
    cwd = set(os.listdir("."))
    with tempfile.TemporaryDirectory() as top:
        box = Path(top) / "a" / "box"
        store = box / "store"
        store.mkdir(parents=True)
        args = ["publish", str(image), str(store), "--name", name] + (["--pvs-site", site] if site is not None else [])
        result = CliRunner().invoke(app, args)
        assert result.exit_code in (0, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert "Traceback" not in result.output
        written = _tree(Path(top))
        if result.exit_code == 2:
            assert result.output.startswith("error: --") and len(result.output.strip().splitlines()) == 1
            assert written == {"a", "a/box", "a/box/store"}
        else:
            assert vdisk_name(name) == name
            stem = f"a/box/store/{name}"
            assert written == {
                "a",
                "a/box",
                "a/box/store",
                *(f"{stem}.{e}" for e in ("vhdx", "register.txt", "imageport.json")),
            }
            text = (store / f"{name}.register.txt").read_text()
            command = [line for line in statements(text) if line and line[0][0] != "comment"][1]
            assert command[2] == ("literal", name) and (site is None or command[6] == ("literal", site))
    assert set(os.listdir(".")) == cwd


SIGNATURE = "c2VjcmV0LXNpZ25hdHVyZS0xMjM0NTY3ODkw"  # planted: no byte of it may reach the output


@BOUNDED
@given(st.sampled_from(["info", "check", "hash"]), st.sampled_from(["https://127.0.0.1:9", "http://", "https://"]),
       hostile_strings, hostile_strings)
def test_hostile_sas_locations_never_show_their_signature(command: str, host: str, path: str, extra: str) -> None:
    """A SAS location (well-formed or not) with hostile pieces around its signature: its sig never printed."""
    location = f"sas+{host}/c/{path}?sv=2022-11-02&{extra}&sig={SIGNATURE}&se=2030-01-01"
    result = CliRunner().invoke(app, ["disk", command, location])
    assert result.exit_code in (1, 2), result.output  # nothing listens on port 9: never a success
    assert "Traceback" not in result.output
    assert SIGNATURE not in result.output and SIGNATURE not in repr(result.exception)
