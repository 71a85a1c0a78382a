"""Text clean-up every user-typed field goes through."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def clean(value: str) -> str:
    """Full-width letters and digits folded to half-width (NFKC), whitespace collapsed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", value)).strip()
