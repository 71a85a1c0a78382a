"""Signing in through the real gRPC server: passwords (argon2, lockout without enumeration),
refresh rotation with reuse detection, revocation, partner clients, API keys, JWKS rotation."""

from __future__ import annotations

import grpc
import jwt
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import text

from crm.identity.v1 import identity_pb2 as pb
from crm_identity.app.credentials import SigningKeys
from crmkit.auth import DataScope
from crmkit.auth.keys import generate_keypair
from crmkit.auth.tokens import AccessTokenVerifier, issue_access_token

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


@pytest.fixture
async def org(admin) -> dict[str, str]:
    root = (await admin.CreateDepartment(pb.CreateDepartmentRequest(
        department=pb.Department(name="Company")))).department
    sales = (await admin.CreateDepartment(pb.CreateDepartmentRequest(
        department=pb.Department(name="Sales", parent_id=root.id)))).department
    team = (await admin.CreateTeam(pb.CreateTeamRequest(team=pb.Team(name="East", department_id=sales.id)))).team
    user = (await admin.CreateUser(pb.CreateUserRequest(user=pb.User(
        login="li.wei", display_name="Li Wei", department_id=sales.id, team_ids=[team.id],
        roles=["sales_rep", "marketing"]), initial_password=PASSWORD))).user
    return {"user": user.id, "team": team.id, "sales_path": sales.path}


def verifier(public) -> AccessTokenVerifier:
    async def make() -> AccessTokenVerifier:
        jwks = (await public.GetJwks(pb.GetJwksRequest())).jwks_json
        return AccessTokenVerifier(jwks, issuer="crm-identity", audience="crm-api")
    return make()  # type: ignore[return-value]


def login(username: str = "li.wei", password: str = PASSWORD) -> pb.IssueTokenRequest:
    return pb.IssueTokenRequest(grant_type="password", username=username, password=password)


async def test_password_grant_issues_a_verifiable_token_with_the_users_grants(public, org) -> None:
    issued = await public.IssueToken(login(" Li.Wei "))
    assert issued.token_type == "Bearer" and issued.expires_in == 600 and issued.refresh_token
    principal = (await verifier(public)).verify(issued.access_token)
    assert principal.subject == org["user"] and principal.kind == "user"
    assert principal.roles == ("marketing", "sales_rep")
    assert principal.team_ids == (org["team"],) and principal.department_path == org["sales_path"]
    assert principal.data_scope == DataScope.ALL          # marketing (all) is wider than sales_rep (own)
    assert principal.may("customers.write") and not principal.may("org.manage")
    assert principal.sees_sensitive and principal.rate_limit == 0 and principal.token_id


async def test_failures_lock_the_account_without_telling_logins_apart(public, admin, org, clock, rpc_error,
                                                                      outbox, sessions) -> None:
    unknown = await rpc_error(public.IssueToken(login("nobody")))
    wrong = await rpc_error(public.IssueToken(login(password="wrong password!")))
    assert unknown.code() == wrong.code() == grpc.StatusCode.UNAUTHENTICATED
    assert unknown.details() == wrong.details() == "invalid login or password"

    for _ in range(4):
        await rpc_error(public.IssueToken(login(password="wrong password!")))
    # locked now: even the right password is refused, with the very same answer
    locked = await rpc_error(public.IssueToken(login()))
    assert (locked.code(), locked.details()) == (unknown.code(), unknown.details())
    failures = [r.message() for r in await outbox() if r.type == "crm.identity.v1.SignInFailed"]
    assert [f.reason for f in failures] == ["unknown_login", *["wrong_password"] * 5, "locked"]
    assert failures[5].locked and not failures[4].locked
    async with sessions() as s:
        assert "$argon2id$" in await s.scalar(text("SELECT password_hash FROM users WHERE login = 'li.wei'"))
    assert all(PASSWORD not in str(r.headers) and PASSWORD.encode() not in r.payload for r in await outbox())

    user = (await admin.GetUser(pb.GetUserRequest(id=org["user"]))).user
    assert user.locked
    clock.advance(minutes=16)                       # the lock expires by itself …
    assert (await public.IssueToken(login())).access_token
    clock.advance(minutes=-16)
    for _ in range(5):
        await rpc_error(public.IssueToken(login(password="wrong password!")))
    await rpc_error(public.IssueToken(login()))
    # … or an administrator sets a new password, which unlocks
    await admin.SetPassword(pb.SetPasswordRequest(user_id=org["user"], new_password="another fine secret"))
    assert (await public.IssueToken(login(password="another fine secret"))).access_token


async def test_users_change_their_own_password_with_the_current_one(stub_for, org, public, rpc_error,
                                                                     principals) -> None:
    import dataclasses
    me = stub_for(dataclasses.replace(principals.rep, subject=org["user"]))
    error = await rpc_error(me.SetPassword(pb.SetPasswordRequest(user_id=org["user"], current_password="nope",
                                                                 new_password="brand new secret")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = await rpc_error(me.SetPassword(pb.SetPasswordRequest(user_id=org["user"], current_password=PASSWORD,
                                                                 new_password="li.wei-secret-1")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT    # contains the login
    await me.SetPassword(pb.SetPasswordRequest(user_id=org["user"], current_password=PASSWORD,
                                               new_password="brand new secret"))
    assert (await public.IssueToken(login(password="brand new secret"))).access_token
    assert (await me.GetUser(pb.GetUserRequest(id=org["user"]))).user.login == "li.wei"
    other = stub_for(dataclasses.replace(principals.rep, subject=org["user"], permissions=()))
    error = await rpc_error(other.SetPassword(pb.SetPasswordRequest(user_id=principals.admin.subject,
                                                                    new_password="brand new secret")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_refresh_rotates_and_reuse_revokes_the_whole_session(public, org, rpc_error, outbox) -> None:
    first = await public.IssueToken(login())
    second = await public.IssueToken(pb.IssueTokenRequest(grant_type="refresh_token",
                                                          refresh_token=first.refresh_token))
    assert second.refresh_token != first.refresh_token and second.access_token
    third = await public.IssueToken(pb.IssueTokenRequest(grant_type="refresh_token",
                                                         refresh_token=second.refresh_token))
    # the first (rotated) token comes back: a copy leaked, the whole family dies
    error = await rpc_error(public.IssueToken(pb.IssueTokenRequest(grant_type="refresh_token",
                                                                   refresh_token=first.refresh_token)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = await rpc_error(public.IssueToken(pb.IssueTokenRequest(grant_type="refresh_token",
                                                                   refresh_token=third.refresh_token)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    revoked = {r.message().token_id for r in await outbox() if r.type == "crm.identity.v1.TokenRevoked"}
    jti = {jwt.decode(t.access_token, options={"verify_signature": False})["jti"] for t in (first, second, third)}
    assert revoked == jti
    # a new sign-in starts a new family
    assert (await public.IssueToken(login())).refresh_token


async def test_disabling_a_user_ends_every_session_now(public, admin, org, rpc_error, outbox) -> None:
    laptop, phone = await public.IssueToken(login()), await public.IssueToken(login())
    await admin.UpdateUser(pb.UpdateUserRequest(user=pb.User(id=org["user"], status=pb.USER_STATUS_DISABLED),
                                                update_mask=FieldMask(paths=["status"])))
    revoked = {r.message().token_id for r in await outbox() if r.type == "crm.identity.v1.TokenRevoked"}
    assert revoked == {jwt.decode(t.access_token, options={"verify_signature": False})["jti"] for t in (laptop, phone)}
    for session in (laptop, phone):
        error = await rpc_error(public.IssueToken(pb.IssueTokenRequest(grant_type="refresh_token",
                                                                       refresh_token=session.refresh_token)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_revoke_token_emits_token_revoked_with_expiry(public, stub_for, org, outbox, principals,
                                                            rpc_error) -> None:
    import dataclasses
    issued = await public.IssueToken(login())
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    me = stub_for(dataclasses.replace(principals.rep, subject=org["user"], token_id=claims["jti"]))
    await me.RevokeToken(pb.RevokeTokenRequest(access_token_id=claims["jti"]))
    events = [r.message() for r in await outbox() if r.type == "crm.identity.v1.TokenRevoked"]
    assert [(e.token_id, e.expires_at) for e in events] == [(claims["jti"], claims["exp"])]
    error = await rpc_error(me.RevokeToken(pb.RevokeTokenRequest(access_token_id="someone-elses")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED

    await me.RevokeToken(pb.RevokeTokenRequest(refresh_token=issued.refresh_token))
    error = await rpc_error(public.IssueToken(pb.IssueTokenRequest(grant_type="refresh_token",
                                                                   refresh_token=issued.refresh_token)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_partner_clients_and_api_keys(public, admin, stub_for, principals, rpc_error, sessions) -> None:
    created = await admin.CreatePartnerClient(pb.CreatePartnerClientRequest(client=pb.PartnerClient(
        name="ERP", scopes=["customers.read", "orders.write"], rate_limit_per_minute=120)))
    client, secret = created.client, created.client_secret
    assert secret and client.client_id and client.rate_limit_per_minute == 120
    issued = await public.IssueToken(pb.IssueTokenRequest(grant_type="client_credentials",
                                                          client_id=client.client_id, client_secret=secret))
    assert issued.refresh_token == "" and issued.scope == "customers.read orders.write"
    principal = (await verifier(public)).verify(issued.access_token)
    assert (principal.kind, principal.subject, principal.rate_limit) == ("client", client.client_id, 120)
    assert principal.scopes == ("customers.read", "orders.write") and principal.may("customers.read")
    assert not principal.may("customers.write")
    error = await rpc_error(public.IssueToken(pb.IssueTokenRequest(
        grant_type="client_credentials", client_id=client.client_id, client_secret=secret + "x")))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    listed = (await admin.ListPartnerClients(pb.ListPartnerClientsRequest())).clients
    assert [c.client_id for c in listed] == [client.client_id]

    made = await admin.CreateApiKey(pb.CreateApiKeyRequest(client_id=client.client_id, name="nightly sync"))
    assert made.key.startswith(made.api_key.prefix) and len(made.key) > 40
    keys = (await admin.ListApiKeys(pb.ListApiKeysRequest(client_id=client.client_id))).api_keys
    assert [k.id for k in keys] == [made.api_key.id] and made.key not in str(keys)
    async with sessions() as s:
        stored = (await s.execute(text("SELECT * FROM api_keys"))).one()._asdict()
    assert made.key not in {str(v) for v in stored.values()}

    exchanged = await public.IssueToken(pb.IssueTokenRequest(grant_type="api_key", api_key=made.key))
    assert (await verifier(public)).verify(exchanged.access_token).subject == client.client_id
    keys = (await admin.ListApiKeys(pb.ListApiKeysRequest(client_id=client.client_id))).api_keys
    assert keys[0].HasField("last_use_time")

    await admin.RevokeApiKey(pb.RevokeApiKeyRequest(id=made.api_key.id))
    error = await rpc_error(public.IssueToken(pb.IssueTokenRequest(grant_type="api_key", api_key=made.key)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    rep = stub_for(principals.rep)
    error = await rpc_error(rep.CreateApiKey(pb.CreateApiKeyRequest(client_id=client.client_id)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await rpc_error(admin.CreatePartnerClient(pb.CreatePartnerClientRequest(client=pb.PartnerClient(
        name="Greedy", scopes=["*"]))))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_jwks_publishes_every_key_and_rotation_keeps_tokens_valid(public, keys, org, config) -> None:
    jwks = (await public.GetJwks(pb.GetJwksRequest())).jwks_json
    published = {k.key_id for k in jwt.PyJWKSet.from_json(jwks).keys}
    current = SigningKeys((keys.signing[0].private_pem,))
    assert published == {SigningKeys((k.private_pem,)).current_kid for k in keys.signing}

    verify = AccessTokenVerifier(jwks, issuer="crm-identity", audience="crm-api")
    issued = await public.IssueToken(login())
    assert jwt.get_unverified_header(issued.access_token)["kid"] == current.current_kid
    # after the swap the second key signs; a gateway that fetched the JWKS before still accepts it
    swapped = SigningKeys((keys.signing[1].private_pem, keys.signing[0].private_pem))
    token = issue_access_token(swapped.current, issuer="crm-identity", audience="crm-api", subject="x")
    assert verify.verify(token).subject == "x" and verify.verify(issued.access_token).subject == org["user"]
    stranger = issue_access_token(generate_keypair().private_pem, issuer="crm-identity", audience="crm-api",
                                  subject="x")
    with pytest.raises(Exception, match="unknown key"):
        verify.verify(stranger)
    assert SigningKeys.from_config(keys.signing[0].private_pem + keys.signing[1].private_pem).jwks() == jwks


async def test_unknown_grant_and_missing_principal(public, rpc_error) -> None:
    error = await rpc_error(public.IssueToken(pb.IssueTokenRequest(grant_type="magic")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = await rpc_error(public.ListUsers(pb.ListUsersRequest()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
