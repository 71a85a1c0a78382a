"""Tax identifiers. Domestic customers carry the 18-character unified social credit code
(GB 32100-2015), whose last character is a check digit; foreign ones their local tax number."""

from __future__ import annotations

import re

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_FOREIGN = re.compile(r"^[A-Z0-9][A-Z0-9\-./ ]{1,38}[A-Z0-9]$")


def uscc_check_char(first17: str) -> str:
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_problem(code: str) -> str | None:
    """Why `code` is not a valid unified social credit code, or None if it is."""
    if len(code) != 18:
        return f"a unified social credit code has 18 characters, not {len(code)}"
    bad = sorted({c for c in code if c not in _USCC_ALPHABET})
    if bad:
        return f"characters {''.join(bad)!r} cannot appear in a unified social credit code"
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        return f"check digit is {code[17]!r} but should be {expected!r}: the code is mistyped"
    return None


def foreign_tax_id_problem(code: str) -> str | None:
    if not _FOREIGN.match(code):
        return "must be 3 to 40 letters, digits, spaces or - . /"
    return None
