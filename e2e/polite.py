"""An HTTP client that behaves as the API guide asks a partner to: on 429 it waits the
`Retry-After` the gateway names and tries again (a bounded number of times). Scenarios that send
hundreds of requests as one demo user share that user's per-minute budget with every other
scenario of the session."""

from __future__ import annotations

import asyncio

import httpx

MAX_RETRIES = 30
MAX_WAIT_SECONDS = 5.0


class _RetryAfter(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(MAX_RETRIES):
            response = await self._inner.handle_async_request(request)
            if response.status_code != 429:
                return response
            await response.aread()
            await asyncio.sleep(min(float(response.headers.get("Retry-After", "1")), MAX_WAIT_SECONDS))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def client(base_url: str, *, timeout: float = 20) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=_RetryAfter())
