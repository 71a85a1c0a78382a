"""What every route module shares: the optimistic-concurrency and idempotency headers, and JSON
answers from the response models."""

from __future__ import annotations

from typing import Any

from fastapi import Header, Response

IF_MATCH = Header(None, alias="If-Match", description='The ETag from a read ("v3"); 412 when stale')
IDEMPOTENCY = Header(None, alias="Idempotency-Key", description="Retries with the same key return the first "
                     "response and create nothing new (kept 24 hours)")


def link_header(links: dict[str, str]) -> str:
    """RFC 8288 `Link` header: where to find what this record leads to, e.g. rel="contract"."""
    return ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links.items())


def json_response(model: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json",
                    headers=headers)
