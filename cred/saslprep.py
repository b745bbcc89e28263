"""SASLprep (RFC 4013): the string preparation SCRAM applies to usernames and passwords.

Both sides must turn the same typed text into the same bytes, or a correct password fails
(e.g. "é" typed as one code point on one machine and as "e" + combining accent on another).
Built on the stdlib `stringprep` tables (Unicode 3.2, as RFC 3454 requires):

1. map: non-ASCII spaces (C.1.2) to U+0020, "commonly mapped to nothing" (B.1) removed;
2. normalize: NFKC;
3. prohibit: controls, private use, non-characters, surrogates, and the rest of C.1.2-C.9;
4. bidi: RFC 3454 section 6 (no mixing of right-to-left and left-to-right characters).

Unassigned code points (A.1) are allowed, as for "queries": passwords with characters newer
than Unicode 3.2 (emoji, ...) keep working, and both sides still agree because the same
function runs on each.
"""

from __future__ import annotations

import stringprep
import unicodedata

__all__ = ["saslprep"]

_PROHIBITED = (
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str) -> str:
    """Return `text` prepared per RFC 4013; raise ValueError naming a prohibited character."""
    if text.isascii() and text.isprintable():
        return text  # the common case: printable ASCII is unchanged by every step
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch
        for ch in text
        if not stringprep.in_table_b1(ch)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for ch in prepared:
        if any(table(ch) for table in _PROHIBITED):
            raise ValueError(f"prohibited character U+{ord(ch):04X} in SASLprep input")
    if any(stringprep.in_table_d1(ch) for ch in prepared):
        if any(stringprep.in_table_d2(ch) for ch in prepared):
            raise ValueError("SASLprep input mixes right-to-left and left-to-right text")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise ValueError("right-to-left SASLprep input must start and end with an RTL character")
    return prepared
