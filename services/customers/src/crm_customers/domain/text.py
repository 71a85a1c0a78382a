"""Text clean-up every user-typed field goes through."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")
# Control characters other than tab and line breaks: never meant, and PostgreSQL rejects NUL
# outright, so left in they would turn a typo into a server error.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean(value: str) -> str:
    """Full-width letters and digits folded to half-width (NFKC), control characters dropped,
    whitespace collapsed."""
    return _SPACES.sub(" ", strip_controls(unicodedata.normalize("NFKC", value))).strip()


def strip_controls(value: str) -> str:
    """For multi-line text: control characters dropped, tabs and line breaks kept."""
    return _CONTROLS.sub("", value)
