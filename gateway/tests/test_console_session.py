"""The browser session (the web console's sign-in): the refresh token lives only in an HttpOnly
cookie scoped to /api/v1/auth; the page holds the short-lived access token in memory."""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx

SESSION = "/api/v1/auth/session"
ADMIN = {"username": "admin", "password": "Bootstrap-pass-2026"}  # conftest.IDENTITY_ADMIN_PASSWORD


def _cookie(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """The crm_refresh cookie's value and attributes (lower-cased names) from Set-Cookie."""
    headers = response.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    jar = SimpleCookie()
    jar.load(headers[0])
    morsel = jar["crm_refresh"]
    flags = {name: morsel[name] for name in ("path", "samesite", "max-age") if morsel[name]}
    flags |= {name: "yes" for name in ("httponly", "secure") if morsel[name]}
    return morsel.value, flags


def _with(refresh_token: str) -> dict[str, str]:
    return {"Cookie": f"crm_refresh={refresh_token}"}


async def test_sign_in_keeps_the_refresh_token_out_of_reach_of_page_scripts(id_client, id_auth):
    r = await id_client.post(SESSION, json=ADMIN)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"} and body["token_type"] == "Bearer"
    value, flags = _cookie(r)
    assert value.startswith("crmr") and value not in r.text
    assert flags == {"path": "/api/v1/auth", "samesite": "strict", "max-age": str(14 * 24 * 3600),
                     "httponly": "yes", "secure": "yes"}
    me = await id_client.get("/api/v1/me", headers=id_auth(body["access_token"]))
    assert me.status_code == 200 and me.json()["user"]["login"] == "admin"


async def test_refresh_reads_the_cookie_and_rotates_it(id_client, id_auth, assert_problem):
    first, _ = _cookie(await id_client.post(SESSION, json=ADMIN))
    r = await id_client.post(f"{SESSION}/refresh", headers=_with(first))
    assert r.status_code == 200, r.text
    second, flags = _cookie(r)
    assert second != first and flags["httponly"] == "yes"
    assert (await id_client.get("/api/v1/me", headers=id_auth(r.json()["access_token"]))).status_code == 200
    # a copied, already used cookie ends the session: the rotated one stops working too
    replay = await id_client.post(f"{SESSION}/refresh", headers=_with(first))
    body = assert_problem(replay, 401, reason="INVALID_GRANT")
    assert body["error"] == "invalid_grant"
    cleared, flags = _cookie(replay)
    assert cleared == "" and flags["max-age"] == "0"
    assert_problem(await id_client.post(f"{SESSION}/refresh", headers=_with(second)), 401, reason="INVALID_GRANT")


async def test_refresh_without_a_session_is_401(id_client, assert_problem):
    body = assert_problem(await id_client.post(f"{SESSION}/refresh"), 401, reason="INVALID_GRANT",
                          detail_mentions=("sign in",))
    assert body["error"] == "invalid_grant"
    assert_problem(await id_client.post(f"{SESSION}/refresh", headers=_with("crmr-made-up")), 401,
                   reason="INVALID_GRANT")


async def test_wrong_password_gets_the_token_endpoints_answer(id_client, assert_problem):
    r = await id_client.post(SESSION, json=ADMIN | {"password": "wrong-password-1"})
    body = assert_problem(r, 401, reason="INVALID_GRANT", detail_mentions=("username or password",))
    assert body["error"] == "invalid_grant"
    assert "crmr" not in r.headers.get("set-cookie", "")
    assert_problem(await id_client.post(SESSION, json={"username": "admin"}), 422, fields=("password",))


async def test_sign_out_revokes_the_session_and_clears_the_cookie(id_client, id_auth, assert_problem):
    r = await id_client.post(SESSION, json=ADMIN)
    refresh_token, _ = _cookie(r)
    access = id_auth(r.json()["access_token"])
    out = await id_client.delete(SESSION, headers=access | _with(refresh_token))
    assert out.status_code == 204, out.text
    cleared, flags = _cookie(out)
    assert cleared == "" and flags["max-age"] == "0" and flags["path"] == "/api/v1/auth"
    assert_problem(await id_client.get("/api/v1/me", headers=access), 401, reason="TOKEN_REVOKED")
    assert_problem(await id_client.post(f"{SESSION}/refresh", headers=_with(refresh_token)), 401,
                   reason="INVALID_GRANT")
    assert_problem(await id_client.delete(SESSION), 401)


async def test_the_cookie_is_not_secure_only_on_plain_http_loopback(id_app):
    transport = httpx.ASGITransport(app=id_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as dev:
        _, flags = _cookie(await dev.post(SESSION, json=ADMIN))
        assert "secure" not in flags and flags["httponly"] == "yes" and flags["samesite"] == "strict"
    async with httpx.AsyncClient(transport=transport, base_url="https://127.0.0.1:8443") as tls:
        _, flags = _cookie(await tls.post(SESSION, json=ADMIN))
        assert flags["secure"] == "yes"
