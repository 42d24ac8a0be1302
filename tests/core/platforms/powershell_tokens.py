"""A small PowerShell tokenizer, written from the language specification, to judge generated lines.

Windows PowerShell Language Specification 3.0, chapter 2 (and about_Quoting_Rules):

- new-line-character: CR, LF (CRLF is one).
- whitespace: any character of Unicode class Zs, Zl or Zp, TAB, VT, FF, and a backtick followed by
  a new line (line continuation).
- single-line-comment: ``#`` up to the end of the line (only where a token may start).
- single-quote-character: ``'`` U+2018 U+2019 U+201A U+201B;
  double-quote-character: ``"`` U+201C U+201D U+201E.
- verbatim-string-literal: single-quote-character, verbatim-string-part*, single-quote-character, where
  a part is any character except a single-quote-character, or two single-quote-characters in a row
  (standing for one; the tokenizer keeps the second). Nothing else is special inside.
- expandable-string-literal (double quotes), variables (``$``), escapes (backtick), sub-expressions,
  and the operators/punctuators ``{ } ( ) ; , | & @ < >`` are anything but a literal value: they are
  reported as kind ``"active"`` so a test can fail on them.
- generic-token (a bare command argument): a run of other characters.

``tokens(text)`` returns ``(kind, value)`` pairs with kind ``word``, ``literal``, ``comment``,
``newline`` or ``active``.
"""

from __future__ import annotations

import unicodedata

SINGLE = "'\u2018\u2019\u201a\u201b"
DOUBLE = '"\u201c\u201d\u201e'
ACTIVE = "{}();,|&@<>$`" + DOUBLE
NEWLINE = "\r\n"


def _whitespace(ch: str) -> bool:
    return ch in "\t\v\f" or unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in NEWLINE:
            j = i + 2 if text.startswith("\r\n", i) else i + 1
            found.append(("newline", text[i:j]))
            i = j
        elif ch == "`" and i + 1 < n and text[i + 1] in NEWLINE:
            i += 2  # line continuation: whitespace
        elif _whitespace(ch):
            i += 1
        elif ch == "#":
            j = i
            while j < n and text[j] not in NEWLINE:
                j += 1
            found.append(("comment", text[i:j]))
            i = j
        elif ch in SINGLE:
            value, i = _verbatim(text, i + 1)
            found.append(("literal", value))
        elif ch in ACTIVE:
            found.append(("active", ch))
            i += 1
        else:
            j = i
            while j < n and not (text[j] in NEWLINE or _whitespace(text[j]) or text[j] in ACTIVE or text[j] in SINGLE):
                j += 1
            found.append(("word", text[i:j]))
            i = j
    return found


def _verbatim(text: str, i: int) -> tuple[str, int]:
    out = []
    while True:
        if i >= len(text):
            raise ValueError("unterminated verbatim string literal")
        ch = text[i]
        if ch in SINGLE:
            if i + 1 < len(text) and text[i + 1] in SINGLE:
                out.append(text[i + 1])
                i += 2
                continue
            return "".join(out), i + 1
        out.append(ch)
        i += 1


def statements(text: str) -> list[list[tuple[str, str]]]:
    """The tokens of ``text`` split at new lines (one list per line, comments kept)."""
    lines: list[list[tuple[str, str]]] = [[]]
    for token in tokens(text):
        if token[0] == "newline":
            lines.append([])
        else:
            lines[-1].append(token)
    return lines
