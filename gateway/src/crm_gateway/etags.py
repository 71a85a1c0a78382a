"""ETags are the record's version: `"v3"`. If-Match turns into the version a change expects."""

from __future__ import annotations

import re

from crmkit.errors import StaleVersion

_ETAG = re.compile(r'^(?:W/)?"v(\d{1,18})"$')


def etag_of(version: int) -> str:
    return f'"v{version}"'


def expected_version(if_match: str | None) -> int:
    """0 means "no precondition". An If-Match that names no version of ours can match nothing."""
    if if_match is None or if_match.strip() == "*":
        return 0
    match = _ETAG.match(if_match.strip())
    if match is None:
        raise StaleVersion(f"If-Match {if_match!r} matches no version of this record; send the ETag of your read",
                           reason="STALE_VERSION")
    return int(match.group(1))
