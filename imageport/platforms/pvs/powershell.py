"""Values in generated PowerShell: single-quoted (verbatim) literals, and comments that stay comments.

PowerShell's language specification (section 2.3.5.2, and about_Quoting_Rules)
defines a verbatim string as a single-quote character, any characters, and a
closing single-quote character, where *single-quote character* is any of
``'`` U+0027, ``‘`` U+2018, ``’`` U+2019, ``‚`` U+201A and ``‛`` U+201B, and
two of them in a row stand for one quote inside the string. Nothing else is
special inside: no ``$`` expansion, no backtick escapes, no subexpressions.
So a value is carried literally by doubling every single-quote character
(each with itself, so whichever of the pair the tokenizer keeps is the
original) and wrapping it in ``'``.
"""

from __future__ import annotations

import unicodedata

SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"


def literal(value: str) -> str:
    """``value`` as one PowerShell verbatim string literal."""
    return "'" + "".join(ch * 2 if ch in SINGLE_QUOTES else ch for ch in value) + "'"


def comment(text: str) -> str:
    """A ``#`` comment line: any line break or control character inside becomes U+FFFD, so it cannot end it."""
    safe = "".join("\ufffd" if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return f"# {safe}"
