"""Generated PowerShell carries every value as exactly one verbatim literal (issue 18, part 2).

Judged by ``powershell_tokens``, a tokenizer written from the language specification: whatever a
site, store or vDisk name holds, each command line tokenizes as the command, its parameters and one
literal per value, equal to the value; comments stay single comment lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imageport.errors import InputError
from imageport.models import PublishOptions, PublishSpec, ShareDiskFormat, parse_model
from imageport.platforms.pvs.powershell import comment, literal
from imageport.platforms.pvs.publish import PublishPlan, registration_text
from imageport.platforms.pvs.store import LocalStoreFolder
from tests.core.platforms.powershell_tokens import SINGLE, statements, tokens

# Every character PowerShell treats specially somewhere, the Unicode quote variants included.
METACHARACTERS = [*"$`\"';|&(){}@#<>", "\n", "\r", "\u2018", "\u2019", "\u201a", "\u201b", "\u201c", "\u201d"]
HOSTILE_TEXT = [
    'Site1"; Write-Host "PWNED',
    "Site1'; Write-Host 'PWNED",
    "Site1\u2019; Write-Host \u2018PWNED",
    "$(Write-Host PWNED)",
    "`$env:PATH",
    "@(1,2) | Out-Host & calc",
    "''''",
    "\u2018\u2019\u201a\u201b'",
    "a #not a comment",
    "{ } ( ) ; , < >",
]


@pytest.mark.parametrize("char", METACHARACTERS)
def test_each_metacharacter_is_one_literal_equal_to_the_input(char: str) -> None:
    value = f"a{char}b{char}{char}"
    assert tokens(literal(value)) == [("literal", value)]


@pytest.mark.parametrize("value", HOSTILE_TEXT)
def test_hostile_text_is_one_literal(value: str) -> None:
    assert tokens(literal(value)) == [("literal", value)]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.text(alphabet=st.sampled_from([*METACHARACTERS, *"ab -\u00e9\u202e\x00\t"]), max_size=30) | st.text(max_size=40)
)
def test_any_text_round_trips_through_a_literal(value: str) -> None:
    assert tokens(literal(value)) == [("literal", value)]


def test_the_tokenizer_sees_the_break_out_that_double_quotes_allowed() -> None:
    # What today's double-quoted line did with such a site: the tokenizer must flag it, or it proves nothing.
    site = 'Site1"; Write-Host "PWNED'
    assert ("active", ";") in tokens(f'Import-PvsDisk -SiteName "{site}"')
    assert ("active", "$") in tokens('Import-PvsDisk -DiskLocatorName "Win$(Write-Host PWNED)"')
    assert ("active", ";") in tokens(f"-SiteName '{site}'; Write-Host 'x'")


def commands(text: str) -> list[list[tuple[str, str]]]:
    """The non-comment statements of ``text``; every comment must be a whole line of its own."""
    found = []
    for line in statements(text):
        if line and line[0][0] == "comment":
            assert len(line) == 1, line
        elif line:
            found.append(line)
    return found


def _registration(site: str, store: str, version: int, tmp_path: Path) -> str:
    options = PublishOptions(pvs_site=site, pvs_store=store)
    plan = PublishPlan("Win11-Gold", f"Win11-Gold{f'.{version}' if version else ''}.vhdx", version,
                       ShareDiskFormat.VHDX, replaces=False)  # fmt: skip
    return "\r\n".join(registration_text(plan, LocalStoreFolder(tmp_path), options)) + "\r\n"


def _assert_registration_carries(text: str, name: str, site: str, store: str, version: int) -> None:
    cmd = "Add-PvsDiskVersion" if version else "Import-PvsDisk"
    expected = [("word", cmd), ("word", "-DiskLocatorName"), ("literal", name), ("word", "-StoreName"),
                ("literal", store), ("word", "-SiteName"), ("literal", site)]  # fmt: skip
    if not version:
        expected.append(("word", "-VHDX"))
    found = commands(text)
    assert found[0][0] == ("word", "Import-Module") and len(found[0]) == 2 and found[0][1][0] == "literal"
    assert found[1:] == [expected]


@pytest.mark.parametrize("version", [0, 3])
@pytest.mark.parametrize("site", HOSTILE_TEXT)
def test_registration_lines_carry_hostile_site_and_store_names(site: str, version: int, tmp_path: Path) -> None:
    store = site[::-1]
    text = _registration(site, store, version, tmp_path)
    _assert_registration_carries(text, "Win11-Gold", site, store, version)


@settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    site=st.text(min_size=1, max_size=40),
    store=st.text(alphabet=st.sampled_from([*METACHARACTERS, "x"]), min_size=1, max_size=20),
)
def test_any_site_and_store_the_spec_accepts_stays_a_literal(site: str, store: str, tmp_path: Path) -> None:
    try:
        options = parse_model(PublishOptions, {"pvs_site": site, "pvs_store": store})
    except InputError as exc:
        assert "pvs_s" in str(exc)  # refused naming the field (line breaks, control characters)
        return
    assert options.pvs_site is not None and options.pvs_store is not None
    _assert_registration_carries(_registration(options.pvs_site, options.pvs_store, 0, tmp_path), "Win11-Gold",
                                 options.pvs_site, options.pvs_store, 0)  # fmt: skip


def test_a_comment_cannot_be_ended_by_a_line_break() -> None:
    assert statements(comment("published x to /tmp/a\nWrite-Host PWNED\u2028y")) == [
        [("comment", "# published x to /tmp/a\ufffdWrite-Host PWNED\ufffdy")]
    ]


def test_a_store_folder_with_a_line_break_in_its_name_stays_in_the_comment(tmp_path: Path) -> None:
    folder = tmp_path / "store\r\nWrite-Host PWNED"
    folder.mkdir()
    options = PublishOptions(pvs_site="S", pvs_store="T")
    plan = PublishPlan("Gold", "Gold.vhdx", 0, ShareDiskFormat.VHDX, replaces=False)
    text = "\r\n".join(registration_text(plan, LocalStoreFolder(folder), options))
    _assert_registration_carries(text, "Gold", "S", "T", 0)


def test_names_with_powershell_in_them_are_refused_before_any_quoting() -> None:
    for name in ("Win$(Write-Host PWNED)", "Gold'; calc", "Gold\u2019x", 'a"b'):
        with pytest.raises(InputError, match=r"name: .*only letters, digits"):
            parse_model(PublishSpec, {"source": {"kind": "local", "path": "a.vhdx"},
                                      "store": {"kind": "local", "path": "store"}, "name": name})  # fmt: skip


def test_line_breaks_in_site_and_store_are_refused_with_the_field() -> None:
    with pytest.raises(InputError, match=r"pvs_site: 'a\\nb' contains a line break"):
        parse_model(PublishOptions, {"pvs_site": "a\nb"})


def test_the_quote_set_is_the_specs() -> None:
    assert set(SINGLE) == {"'", "\u2018", "\u2019", "\u201a", "\u201b"}
