"""The web console (web/, built by `vite build`) served at `/` beside the API.

Hashed assets are cached for a year; any other GET outside the gateway's own paths answers
index.html, so a deep link (/customers/123) opens the single-page app, which routes in the
browser. It is middleware rather than a catch-all route so the API's routing is untouched: an
unknown API path stays 404 and a wrong method 405.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_gateway.problems import problem

log = logging.getLogger(__name__)

# First path segments the gateway answers itself; the console never falls back below them.
GATEWAY_PATHS = frozenset({"api", "docs", "redoc", "openapi.json", "metrics", "healthz", "readyz", ".well-known"})
# antd writes inline styles (CSS-in-JS); scripts and API calls stay on this origin.
INDEX_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_IMMUTABLE = "public, max-age=31536000, immutable"


class Console:
    """ASGI middleware serving the built console; everything else goes to the wrapped app."""

    def __init__(self, app: ASGIApp, dist: Path) -> None:
        self.app = app
        self.index = dist / "index.html"
        self.assets = StaticFiles(directory=dist / "assets", check_dir=False)
        # favicon, manifest: names without a hash, so revalidated on each visit
        self.top_files = {p.name: p for p in dist.iterdir() if p.is_file() and p.name != "index.html"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path = scope["path"].lstrip("/")
        first = path.split("/", 1)[0]
        if first in GATEWAY_PATHS:
            await self.app(scope, receive, send)
        elif first == "assets":
            await self._asset(scope, receive, send)
        elif path in self.top_files:
            await FileResponse(self.top_files[path], headers={"Cache-Control": "no-cache"})(scope, receive, send)
        else:
            await FileResponse(self.index, media_type="text/html", headers=INDEX_HEADERS)(scope, receive, send)

    async def _asset(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def cache_forever(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                message["headers"] = [*message["headers"], (b"cache-control", _IMMUTABLE.encode())]
            await send(message)

        sub = dict(scope, root_path=scope.get("root_path", "") + "/assets")
        try:
            await self.assets(sub, receive, cache_forever)
        except HTTPException as exc:  # raised outside the app's exception handlers
            answer = problem(exc.status_code, f"no console asset {scope['path']}", reason="ROUTE_NOT_FOUND",
                             instance=scope["path"])
            await answer(scope, receive, send)


def built(dist: Path) -> bool:
    """Whether `vite build` has produced the console in `dist`; says so in the log when not."""
    if (dist / "index.html").is_file():
        log.info("serving the web console from %s", dist)
        return True
    log.warning("no web console at %s (run `make web`): the gateway serves the API only", dist)
    return False
