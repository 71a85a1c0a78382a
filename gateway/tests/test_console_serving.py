"""The web console served by the gateway at `/` (crm_gateway.console) and the CORS allow-list.

No servers: the app is built and driven through httpx's ASGI transport without its lifespan, which
is enough for static files, routing and middleware."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from crm_gateway.main import create_app
from crm_gateway.settings import GatewaySettings
from crmkit.auth.keys import generate_keypair, jwks_of

INDEX = "<!doctype html><title>console</title><div id=root></div>"


def _settings(**overrides: object) -> GatewaySettings:
    key = generate_keypair()
    return GatewaySettings(jwt_jwks=jwks_of(key.public_pem), principal_private_key=key.private_pem, **overrides)


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(INDEX, encoding="utf-8")
    (tmp_path / "assets" / "index-3f2a9c.js").write_text("console.log('app')", encoding="utf-8")
    (tmp_path / "favicon.svg").write_text("<svg/>", encoding="utf-8")
    return tmp_path


def _client(settings: GatewaySettings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")


async def test_the_console_and_its_deep_links_answer_index_html(dist: Path):
    async with _client(_settings(console_dir=dist)) as client:
        for path in ("/", "/customers/0b7d9c1e-5f3a-4a38-9d4e-2f1c0a8b7e61", "/approvals", "/sign-in?next=/x"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert page.text == INDEX
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["cache-control"] == "no-cache"
            assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self' covers it
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        asset = await client.get("/assets/index-3f2a9c.js")
        assert asset.status_code == 200 and asset.text == "console.log('app')"
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert (await client.get("/assets/missing-000000.js")).status_code == 404
        icon = await client.get("/favicon.svg")
        assert icon.text == "<svg/>" and icon.headers["cache-control"] == "no-cache"
        head = await client.head("/customers")
        assert head.status_code == 200


async def test_the_gateways_own_paths_are_untouched_by_the_console(dist: Path):
    async with _client(_settings(console_dir=dist)) as with_console, _client(_settings()) as api_only:
        for client in (with_console, api_only):
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            assert (await client.get("/openapi.json")).json()["info"]["title"] == "CRM API"
            assert "swagger" in (await client.get("/docs")).text.lower()
            assert (await client.get("/metrics")).headers["content-type"].startswith("text/plain")
            unknown = await client.get("/api/v1/no-such-thing")
            assert unknown.status_code == 404 and unknown.json()["reason"] == "ROUTE_NOT_FOUND"
            posted = await client.post("/api/v1/no-such-thing", json={})
            assert posted.status_code == 404
            assert (await client.get("/api/v1/customers")).status_code == 401
            assert (await client.put("/api/v1/auth/session", json={})).status_code == 405


async def test_without_a_built_console_the_gateway_serves_the_api_only(tmp_path: Path, caplog):
    with caplog.at_level(logging.WARNING, logger="crm_gateway.console"):
        settings = _settings(console_dir=tmp_path / "absent")
        async with _client(settings) as client:
            assert (await client.get("/")).status_code == 404
            assert (await client.get("/customers/1")).status_code == 404
            assert (await client.get("/healthz")).status_code == 200
    assert any("serves the API only" in r.getMessage() for r in caplog.records)


async def test_cors_is_same_origin_only_unless_origins_are_listed(dist: Path):
    preflight = {"Origin": "https://m.example.com", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    async with _client(_settings(console_dir=dist)) as default:
        answer = await default.options("/api/v1/customers", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
        got = await default.get("/healthz", headers={"Origin": "https://m.example.com"})
        assert "access-control-allow-origin" not in got.headers
    listed = _settings(console_dir=dist, cors_origins="https://m.example.com, https://portal.example.com/")
    assert listed.cors_origins == ("https://m.example.com", "https://portal.example.com")
    async with _client(listed) as client:
        answer = await client.options("/api/v1/customers", headers=preflight)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "https://m.example.com"
        assert answer.headers["access-control-allow-credentials"] == "true"
        denied = await client.get("/api/v1/customers", headers={"Origin": "https://m.example.com"})
        assert denied.status_code == 401  # error answers carry the headers too, so the page can read them
        assert denied.headers["access-control-allow-origin"] == "https://m.example.com"
        assert "x-trace-id" in denied.headers["access-control-expose-headers"].lower()
        other = await client.options("/api/v1/customers", headers=preflight | {"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("value", ["*", "m.example.com", "https://m.example.com/app"])
def test_cors_origins_must_be_named_one_by_one(value: str):
    with pytest.raises(ValidationError, match="CRM_CORS_ORIGINS"):
        _settings(cors_origins=value)
