"""Signing in through the gateway against the real identity service (in-process): the token
endpoint, revocation, JWKS, API keys, partner scopes, the admin REST API and denied-access
events."""

from __future__ import annotations

import base64
import json

import nats
import pytest

from crm.identity.v1 import events_pb2
from crm_identity.domain.model import BUILT_IN_ROLES
from crmkit.auth import Principal
from crmkit.auth.keys import key_id
from crmkit.auth.tokens import issue_access_token

pytestmark = pytest.mark.integration

TOKEN = "/api/v1/auth/token"
ADMIN_PASSWORD = "Bootstrap-pass-2026"  # conftest.IDENTITY_ADMIN_PASSWORD


@pytest.fixture(scope="module")
async def admin_h(login, id_auth):
    return id_auth(await login("admin", ADMIN_PASSWORD))


@pytest.fixture(scope="module")
async def org(id_client, admin_h):
    """A department and a team to put users in."""
    departments = (await id_client.get("/api/v1/departments", headers=admin_h)).json()["items"]
    root = departments[0]
    sales = await id_client.post("/api/v1/departments", headers=admin_h,
                                 json={"name": "Sales (gateway tests)", "parent_id": root["id"]})
    assert sales.status_code == 201, sales.text
    team = await id_client.post("/api/v1/teams", headers=admin_h,
                                json={"name": "East (gateway tests)", "department_id": sales.json()["id"]})
    assert team.status_code == 201, team.text
    return {"root": root, "sales": sales.json(), "team": team.json()}


@pytest.fixture(scope="module")
def new_user(id_client, admin_h, org, unique):
    async def make(role: str, password: str = "Correct-horse-9") -> dict:
        login = f"u{unique()}"
        r = await id_client.post("/api/v1/users", headers=admin_h, json={
            "login": login, "display_name": f"User {login}", "password": password, "roles": [role],
            "department_id": org["sales"]["id"], "team_ids": [org["team"]["id"]]})
        assert r.status_code == 201, r.text
        return r.json() | {"password": password}

    return make


def _without_trace(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "trace_id"}


async def test_password_login_refresh_and_revoke(id_client, new_user, id_auth, assert_problem, eventually):
    user = await new_user("sales_rep")
    form = await id_client.post(TOKEN, data={"grant_type": "password", "username": user["login"],
                                             "password": user["password"]})
    assert form.status_code == 200, form.text
    assert form.headers["cache-control"] == "no-store"
    tokens = form.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0 and tokens["refresh_token"]
    me = await id_client.get("/api/v1/customers", headers=id_auth(tokens["access_token"]))
    assert me.status_code == 200, me.text
    assert me.headers["ratelimit-limit"] == "600" and "ratelimit-remaining" in me.headers

    refreshed = await id_client.post(TOKEN, json={"grant_type": "refresh_token",
                                                  "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["access_token"] != tokens["access_token"]
    reused = await id_client.post(TOKEN, json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    body = assert_problem(reused, 401, reason="INVALID_GRANT")
    assert body["error"] == "invalid_grant"

    # sign out: the access token of the request is refused at once
    out = await id_client.post("/api/v1/auth/revoke", headers=id_auth(second["access_token"]))
    assert out.status_code == 200, out.text
    assert_problem(await id_client.get("/api/v1/customers", headers=id_auth(second["access_token"])), 401,
                   reason="TOKEN_REVOKED")


async def test_revocation_reaches_the_gateway_by_event(id_client, id_app, new_user, login, id_auth, assert_problem,
                                                        eventually):
    """The refresh-token reuse above revoked the whole session by event; here directly: revoking a
    refresh token revokes its access token in identity, and the event puts it in the deny set."""
    user = await new_user("sales_rep")
    r = await id_client.post(TOKEN, json={"grant_type": "password", "username": user["login"],
                                          "password": user["password"]})
    tokens = r.json()
    h = id_auth(tokens["access_token"])
    assert (await id_client.get("/api/v1/customers", headers=h)).status_code == 200
    out = await id_client.post("/api/v1/auth/revoke", headers=h, data={"token": tokens["refresh_token"],
                                                                       "token_type_hint": "refresh_token"})
    assert out.status_code == 200, out.text

    async def refused() -> bool:
        return (await id_client.get("/api/v1/customers", headers=h)).status_code == 401

    await eventually(refused)
    assert_problem(await id_client.get("/api/v1/customers", headers=h), 401, reason="TOKEN_REVOKED")


async def test_wrong_password_unknown_user_and_lockout_look_the_same(id_client, new_user, unique, assert_problem):
    user = await new_user("sales_rep")
    wrong = await id_client.post(TOKEN, data={"grant_type": "password", "username": user["login"],
                                              "password": "not-the-password"})
    unknown = await id_client.post(TOKEN, data={"grant_type": "password", "username": f"nobody{unique()}",
                                                "password": "not-the-password"})
    first = assert_problem(wrong, 401, reason="INVALID_GRANT")
    assert first["error"] == "invalid_grant" and first["error_description"] == first["detail"]
    assert _without_trace(first) == _without_trace(assert_problem(unknown, 401))
    for _ in range(6):  # beyond the lockout threshold
        await id_client.post(TOKEN, data={"grant_type": "password", "username": user["login"], "password": "nope-nope"})
    locked = await id_client.post(TOKEN, data={"grant_type": "password", "username": user["login"],
                                               "password": user["password"]})
    assert _without_trace(assert_problem(locked, 401)) == _without_trace(first)
    assert "password" not in wrong.text.lower().replace("the username or password is wrong", "")


async def test_token_endpoint_bad_requests(id_client, assert_problem):
    body = assert_problem(await id_client.post(TOKEN, data={"grant_type": "magic"}), 400,
                          reason="UNSUPPORTED_GRANT_TYPE")
    assert body["error"] == "unsupported_grant_type"
    assert assert_problem(await id_client.post(TOKEN, data={"grant_type": "password", "username": "x"}), 400,
                          reason="INVALID_REQUEST")["error"] == "invalid_request"
    assert_problem(await id_client.post(TOKEN, json={}), 400, reason="INVALID_REQUEST")
    assert_problem(await id_client.post(TOKEN, content=b"{nope", headers={"content-type": "application/json"}), 400)
    assert_problem(await id_client.post(TOKEN, content=b"x", headers={"content-type": "text/plain"}), 415)
    # form bodies are for the OAuth routes only
    assert_problem(await id_client.post("/api/v1/users", data={"login": "x"}), 415)


async def test_partner_client_credentials_scopes_and_rate_limit(id_client, admin_h, id_auth, assert_problem, unique):
    created = await id_client.post("/api/v1/partner-clients", headers=admin_h, json={
        "name": f"ERP {unique()}", "scopes": ["customers:read"], "rate_limit_per_minute": 1000})
    assert created.status_code == 201, created.text
    client = created.json()
    assert client["scopes"] == ["customers.read"] and client["client_secret"]
    listed = (await id_client.get("/api/v1/partner-clients", headers=admin_h)).json()["items"]
    assert all("client_secret" not in c for c in listed)
    assert client["client_id"] in {c["client_id"] for c in listed}

    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    by_basic = await id_client.post(TOKEN, data={"grant_type": "client_credentials"},
                                    headers={"Authorization": f"Basic {basic}"})
    assert by_basic.status_code == 200, by_basic.text
    assert by_basic.json()["scope"] == "customers.read" and "refresh_token" not in by_basic.json()
    by_body = await id_client.post(TOKEN, json={"grant_type": "client_credentials", "client_id": client["client_id"],
                                                "client_secret": client["client_secret"]})
    assert by_body.status_code == 200
    h = id_auth(by_body.json()["access_token"])
    read = await id_client.get("/api/v1/customers", headers=h)
    assert read.status_code == 200 and read.headers["ratelimit-limit"] == "1000"
    denied = await id_client.post("/api/v1/customers", headers=h, json={"name": "Partner made"})
    body = assert_problem(denied, 403, reason="PERMISSION_DENIED", detail_mentions=("customers.write",))
    assert body["permission"] == "customers.write"
    bad = await id_client.post(TOKEN, data={"grant_type": "client_credentials", "client_id": client["client_id"],
                                            "client_secret": "wrong"})
    assert assert_problem(bad, 401, reason="INVALID_CLIENT")["error"] == "invalid_client"


async def test_api_key_authentication_and_revocation(id_client, id_app, admin_h, assert_problem, unique, eventually):
    client = (await id_client.post("/api/v1/partner-clients", headers=admin_h, json={
        "name": f"WMS {unique()}", "scopes": ["customers.read"]})).json()
    made = await id_client.post("/api/v1/api-keys", headers=admin_h, json={"client_id": client["client_id"],
                                                                           "name": "prod"})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert key.startswith(made.json()["prefix"])
    listed = await id_client.get("/api/v1/api-keys", headers=admin_h, params={"client_id": client["client_id"]})
    assert listed.status_code == 200 and key not in listed.text and len(listed.json()["items"]) == 1

    h = {"X-API-Key": key}
    assert (await id_client.get("/api/v1/customers", headers=h)).status_code == 200
    assert_problem(await id_client.post("/api/v1/customers", headers=h, json={"name": "x"}), 403,
                   reason="PERMISSION_DENIED")
    assert_problem(await id_client.get("/api/v1/customers", headers={"X-API-Key": key + "x"}), 401,
                   reason="INVALID_API_KEY")

    revoked = await id_client.delete(f"/api/v1/api-keys/{made.json()['id']}", headers=admin_h)
    assert revoked.status_code == 204, revoked.text

    async def refused() -> bool:
        return (await id_client.get("/api/v1/customers", headers=h)).status_code == 401

    await eventually(refused)  # the apikey.changed event drops the cached exchange
    assert_problem(await id_client.get("/api/v1/customers", headers=h), 401, reason="INVALID_API_KEY")


async def test_jwks_lists_both_identity_keys_and_either_verifies(id_client, identity_keys, id_auth):
    r = await id_client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    kids = {k["kid"] for k in r.json()["keys"]}
    assert {key_id(k.public_pem) for k in identity_keys} <= kids
    for key in identity_keys:
        token = issue_access_token(key.private_pem, issuer="crm-identity-test", audience="crm-api-test",
                                   subject="someone", permissions=("org.read",))
        assert (await id_client.get("/api/v1/roles", headers=id_auth(token))).status_code == 200


async def test_permission_denied_for_every_route_without_its_permission(client, gateway_app, token, assert_problem):
    """Every /api operation names its permission; a caller with every other one gets 403 naming it."""
    schema = gateway_app.openapi()
    everything = {perm for role in BUILT_IN_ROLES for perm in role.permissions if perm != "*"} | {
        "industries.manage"}
    checked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            permission = operation.get("x-permission")
            if permission is None or " " in permission:
                continue
            principal = Principal(subject=f"lacks-{permission}", permissions=tuple(sorted(everything - {permission})))
            url = path.replace("{customer_id}", "0193a000-0000-7000-8000-000000000001").replace(
                "{contact_id}", "0193a000-0000-7000-8000-000000000002").replace("{", "").replace("}", "")
            r = await client.request(method.upper(), url, headers={"Authorization": f"Bearer {token(principal)}"},
                                     json={} if method in ("post", "patch") else None)
            body = assert_problem(r, 403, reason="PERMISSION_DENIED")
            assert body["permission"] == permission, (method, path)
            checked += 1
    assert checked >= 33


async def test_auditor_reads_but_cannot_write(client, token, assert_problem):
    auditor = next(r for r in BUILT_IN_ROLES if r.name == "auditor")
    bearer = token(Principal(subject="aud-1", roles=("auditor",), permissions=auditor.permissions))
    h = {"Authorization": f"Bearer {bearer}"}
    assert (await client.get("/api/v1/customers", headers=h)).status_code == 200
    assert_problem(await client.post("/api/v1/customers", headers=h, json={"name": "No"}), 403,
                   reason="PERMISSION_DENIED")
    assert_problem(await client.post("/api/v1/industries", headers=h, json={"code": "x", "name": "x"}), 403)


async def test_rate_limit_answers_429_with_retry_after(gateway_settings, token, assert_problem):
    import httpx

    from crm_gateway.main import create_app

    app = create_app(gateway_settings.model_copy(update={"rate_limit_per_minute": 3}))
    h = {"Authorization": f"Bearer {token(Principal(subject='hasty', roles=('sales_rep',)))}"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://gw") as c:
        answers = [await c.get("/api/v1/customers", headers=h) for _ in range(4)]
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        body = assert_problem(answers[3], 429, reason="RATE_LIMITED")
        assert int(answers[3].headers["retry-after"]) == 20
        assert answers[3].headers["ratelimit-remaining"] == "0" and answers[3].headers["ratelimit-limit"] == "3"
        assert "3 requests a minute" in body["detail"]
        other = {"Authorization": f"Bearer {token(Principal(subject='patient', roles=('sales_rep',)))}"}
        assert (await c.get("/api/v1/customers", headers=other)).status_code == 200


async def test_sign_in_attempts_are_throttled_per_address(id_settings, assert_problem):
    import httpx

    from crm_gateway.main import create_app

    app = create_app(id_settings.model_copy(update={"sign_in_rate_limit_per_minute": 2}))
    guess = {"grant_type": "password", "username": "nobody.here", "password": "not-the-password"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://gw") as c:
        answers = [await c.post("/api/v1/auth/token", data=guess) for _ in range(3)]
    assert [a.status_code for a in answers] == [401, 401, 429]
    body = assert_problem(answers[2], 429, reason="RATE_LIMITED")
    # 2 a minute: the next attempt is due half a minute after the first (less the time the test took)
    assert "sign-in attempts" in body["detail"] and 25 <= int(answers[2].headers["retry-after"]) <= 30


async def test_denied_access_is_published(id_client, id_settings, token, eventually):
    nc = await nats.connect(id_settings.nats_url)
    seen: list[events_pb2.AccessDenied] = []

    async def on(msg) -> None:
        assert msg.headers["ce-type"] == "crm.identity.v1.AccessDenied"
        seen.append(events_pb2.AccessDenied.FromString(msg.data))

    sub = await nc.subscribe("crm.identity.access.denied", cb=on)
    await nc.flush()  # the server knows of the subscription before the denials are published
    try:
        marketing = Principal(subject="mkt-denied", permissions=("customers.read",))
        bearer = token(marketing)
        r = await id_client.post("/api/v1/customers", headers={"Authorization": f"Bearer {bearer}"},
                                 json={"name": "x"})
        assert r.status_code == 403
        anonymous = await id_client.get("/api/v1/users/abc")
        assert anonymous.status_code == 401

        # Other tests' denials, published a moment later, may land here too: pick out these two.
        def anonymous_on_users() -> list[events_pb2.AccessDenied]:
            return [e for e in seen if e.path == "/api/v1/users/{user_id}" and e.status == 401]

        async def both() -> bool:
            return any(e.actor == "mkt-denied" for e in seen) and bool(anonymous_on_users())

        await eventually(both)
        denied = next(e for e in seen if e.actor == "mkt-denied")
        assert (denied.method, denied.path, denied.status, denied.reason) == (
            "POST", "/api/v1/customers", 403, "PERMISSION_DENIED")
        missing = anonymous_on_users()[0]
        assert (missing.actor, missing.method, missing.reason) == ("", "GET", "MISSING_TOKEN")
        assert all(bearer not in e.SerializeToString().decode(errors="ignore") for e in seen)
    finally:
        await sub.unsubscribe()
        await nc.close()


async def test_admin_routes(id_client, admin_h, org, new_user, assert_problem, login, id_auth, unique):
    user = await new_user("sales_rep")
    got = await id_client.get(f"/api/v1/users/{user['id']}", headers=admin_h)
    assert got.status_code == 200 and got.headers["etag"] == f'"v{user["version"]}"'
    assert got.json()["roles"] == ["sales_rep"] and got.json()["team_ids"] == [org["team"]["id"]]
    patched = await id_client.patch(f"/api/v1/users/{user['id']}", headers=admin_h | {"If-Match": got.headers["etag"]},
                                    json={"display_name": "Renamed", "roles": ["sales_manager"]})
    assert patched.status_code == 200, patched.text
    assert patched.json()["display_name"] == "Renamed" and patched.json()["roles"] == ["sales_manager"]
    stale = await id_client.patch(f"/api/v1/users/{user['id']}", headers=admin_h | {"If-Match": got.headers["etag"]},
                                  json={"display_name": "Lost"})
    assert_problem(stale, 412, reason="STALE_VERSION")
    page = await id_client.get("/api/v1/users", headers=admin_h, params={"team_id": org["team"]["id"], "limit": 1})
    assert page.status_code == 200 and len(page.json()["items"]) == 1 and page.json()["next_cursor"]
    assert_problem(await id_client.get("/api/v1/users", headers=admin_h, params={"cursor": "garbage"}), 400)

    # bad input is problem+json with the fields at fault
    assert_problem(await id_client.post("/api/v1/users", headers=admin_h, json={"login": "x"}), 422,
                   fields=("display_name", "password"))
    assert_problem(await id_client.post("/api/v1/users", headers=admin_h, json={
        "login": f"s{unique()}", "display_name": "Short", "password": "short"}), 422)
    assert_problem(await id_client.post("/api/v1/roles", headers=admin_h, json={
        "name": f"r{unique()}", "permissions": ["no.such"]}), 422)
    assert_problem(await id_client.post("/api/v1/teams", headers=admin_h, json={"name": "T", "bogus": 1}), 422,
                   fields=("bogus",))

    # a password change by the user themself needs the current one; then the new one signs in
    me = id_auth(await login(user["login"], user["password"]))
    assert_problem(await id_client.get("/api/v1/audit", headers=me), 403, reason="PERMISSION_DENIED")
    changed = await id_client.post(f"/api/v1/users/{user['id']}/password", headers=me,
                                   json={"current_password": user["password"], "new_password": "Another-secret-7"})
    assert changed.status_code == 204, changed.text
    assert await login(user["login"], "Another-secret-7")
    other = await new_user("sales_rep")
    assert_problem(await id_client.post(f"/api/v1/users/{other['id']}/password", headers=me,
                                        json={"new_password": "Hijacked-pass-1"}), 403)

    roles = (await id_client.get("/api/v1/roles", headers=admin_h)).json()["items"]
    assert {"admin", "sales_rep", "auditor"} <= {r["name"] for r in roles}
    role = await id_client.post("/api/v1/roles", headers=admin_h, json={
        "name": f"viewer_{unique()}", "permissions": ["customers.read"], "data_scope": "team"})
    assert role.status_code == 201, role.text
    assert role.json()["data_scope"] == "team" and not role.json()["built_in"]
    teams = (await id_client.get("/api/v1/teams", headers=admin_h,
                                 params={"department_id": org["sales"]["id"]})).json()["items"]
    assert [t["id"] for t in teams] == [org["team"]["id"]]


async def test_audit_through_rest(id_client, admin_h, token, assert_problem):
    listed = await id_client.get("/api/v1/audit", headers=admin_h, params={"limit": 5})
    assert listed.status_code == 200, listed.text
    assert "items" in listed.json()
    assert_problem(await id_client.get("/api/v1/audit", headers=admin_h, params={"from": "2026-01-01T00:00:00"}), 422,
                   fields=("from",))
    verified = await id_client.get("/api/v1/audit/verify", headers=admin_h)
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["intact"] is True and body["first_broken_sequence"] is None
    assert json.dumps(body)


async def test_me_and_finding_users_by_login_or_name(id_client, new_user, login, id_auth, admin_h, org,
                                                     assert_problem):
    manager = await new_user("sales_manager")
    rep = await new_user("sales_rep")
    patched = await id_client.patch(f"/api/v1/users/{rep['id']}", headers=admin_h, json={"manager_id": manager["id"]})
    assert patched.status_code == 200, patched.text
    rep_h = id_auth(await login(rep["login"], rep["password"]))

    me = await id_client.get("/api/v1/me", headers=rep_h)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["kind"] == "user" and body["subject"] == rep["id"] and body["user"]["login"] == rep["login"]
    assert body["roles"] == ["sales_rep"] and "leads.write" in body["permissions"] and body["data_scope"] == "own"
    assert body["department"]["id"] == org["sales"]["id"] and [t["id"] for t in body["teams"]] == [org["team"]["id"]]
    assert body["manager"] == {"id": manager["id"], "login": manager["login"],
                               "display_name": manager["display_name"]}
    assert_problem(await id_client.get("/api/v1/me"), 401)

    by_login = (await id_client.get("/api/v1/users", headers=admin_h, params={"login": rep["login"]})).json()
    assert [u["id"] for u in by_login["items"]] == [rep["id"]]
    by_name = (await id_client.get("/api/v1/users", headers=admin_h,
                                   params={"name": rep["display_name"].upper()})).json()
    assert [u["id"] for u in by_name["items"]] == [rep["id"]]
