"""Generated hostile strings for property tests of every input edge (issue 18, part 6).

Traversal, absolute/UNC/drive/device paths, NUL and control characters, Unicode look-alikes and
bidi controls, reserved device names, PowerShell metacharacters, very long values; and mixtures of
their pieces, so shrinking finds the smallest offender.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st

# Bounded and reproducible: the same examples on every machine, no deadline on slow CI cores.
BOUNDED = settings(max_examples=200, deadline=None, derandomize=True)

SEEDS = [
    "..", "../x", "a/../../b", "..\\..\\x", "./../x", "a/./b", ".", "", " ", "/", "\\",
    "/etc/passwd", "\\\\server\\share\\x", "//server/share", "\\\\?\\C:\\x", "C:\\Windows", "C:x", "x:stream",
    "a\x00b", "\x00", "a\nb", "a\r\nb", "\u2028", "\x1b[31m", "\u202egnp.exe", "\ufeff",
    "CON", "con.txt", "NUL.vhdx", "COM1", "LPT9.x", "COM\u00b9", "CONIN$", "trailing.", "trailing ", "Gold.3",
    "$(Write-Host PWNED)", "`$x", "'; calc; '", '"; calc; "', "\u2018x\u2019", "a|b&c;d", "<x>", "@{a=1}",
    "%2e%2e%2f", "\uff0e\uff0e\uff0fx", "\u2025/x", "Ω≈ç√", "🙂", "x" * 53, "x" * 256, "a/" * 600,
]  # fmt: skip
PIECES = ["..", ".", "/", "\\", ":", "C:", "\x00", "\n", "CON", "$", "'", "\u2019", "x", "Gold", " ", "é", "-", "3"]

hostile_strings = st.one_of(
    st.sampled_from(SEEDS),
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
    st.text(max_size=60),
    st.integers(min_value=50, max_value=3000).map(lambda n: "a" * n),
)
