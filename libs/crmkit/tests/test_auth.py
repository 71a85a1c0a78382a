"""Access tokens (gateway side) and the signed principal (service side): what is accepted and
every way a token is refused."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from crmkit.auth import (
    SERVICE_PERMISSIONS,
    DataScope,
    Principal,
    PrincipalSigner,
    PrincipalVerifier,
    ServiceToken,
    current_principal,
    service_principal,
    use_principal,
)
from crmkit.auth.keys import KeyPair, generate_keypair, jwks_of, key_id
from crmkit.auth.tokens import AccessTokenVerifier, issue_access_token
from crmkit.errors import Unauthenticated
from crmkit.service import split_pems

ISSUER = "https://identity.crm.test"
AUDIENCE = "crm-gateway"

KEY = generate_keypair()
NEW_KEY = generate_keypair()
ATTACKER = generate_keypair()

ALICE = Principal(subject="u-alice", name="Alice 李", kind="user", roles=("sales_rep", "viewer"),
                  team_ids=("east", "key-accounts"), department_path="/sales/east/",
                  data_scope=DataScope.TEAM, scopes=("customers:read", "customers:write"))


def _issue(key: KeyPair = KEY, **overrides: object) -> str:
    args: dict[str, object] = {"issuer": ISSUER, "audience": AUDIENCE, "subject": "u-alice",
                               "name": "Alice", "roles": ("sales_rep",), "team_ids": ("east",),
                               "department_path": "/sales/east/", "data_scope": DataScope.TEAM}
    args.update(overrides)
    return issue_access_token(key.private_pem, **args)  # type: ignore[arg-type]


def _verifier(*keys: KeyPair) -> AccessTokenVerifier:
    pems = [k.public_pem for k in keys or (KEY,)]
    return AccessTokenVerifier(jwks_of(*pems), issuer=ISSUER, audience=AUDIENCE)


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["admin"]
    claims["data_scope"] = "all"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


# --------------------------------------------------------------------------- access tokens


def test_access_token_good() -> None:
    principal = _verifier().verify(_issue())
    assert principal.token_id, "the token's jti identifies it for revocation"
    assert principal == Principal(subject="u-alice", name="Alice", kind="user", roles=("sales_rep",),
                                  team_ids=("east",), department_path="/sales/east/",
                                  data_scope=DataScope.TEAM, token_id=principal.token_id)


def test_access_token_carries_permissions_sensitivity_and_rate_limit() -> None:
    key = generate_keypair()
    token = issue_access_token(key.private_pem, issuer="i", audience="a", subject="erp", kind="client",
                               permissions=("customers.read",), sees_sensitive=True, rate_limit=120,
                               scopes=("customers:read",), token_id="t-1")
    principal = AccessTokenVerifier(jwks_of(key.public_pem), issuer="i", audience="a").verify(token)
    assert (principal.kind, principal.permissions, principal.sees_sensitive, principal.rate_limit,
            principal.scopes, principal.token_id) == ("client", ("customers.read",), True, 120,
                                                      ("customers:read",), "t-1")
    assert principal.may("customers.read") and not principal.may("customers.write")
    assert Principal(subject="x", permissions=("customers.*",)).may("customers.delete")
    assert Principal(subject="x", permissions=("*",)).may("audit.read")


def test_access_token_expired() -> None:
    with pytest.raises(Unauthenticated, match="expired"):
        _verifier().verify(_issue(ttl_seconds=-120))  # beyond the 30 s leeway


def test_access_token_within_leeway_is_accepted() -> None:
    assert _verifier().verify(_issue(ttl_seconds=-5)).subject == "u-alice"


def test_access_token_wrong_audience() -> None:
    with pytest.raises(Unauthenticated, match=r"(?i)audience"):
        _verifier().verify(_issue(audience="someone-else"))


def test_access_token_wrong_issuer() -> None:
    with pytest.raises(Unauthenticated, match=r"(?i)issuer"):
        _verifier().verify(_issue(issuer="https://evil.example"))


def test_access_token_unknown_key() -> None:
    with pytest.raises(Unauthenticated, match="unknown key"):
        _verifier().verify(_issue(key=ATTACKER))


def test_access_token_tampered_claims() -> None:
    with pytest.raises(Unauthenticated, match="invalid token"):
        _verifier().verify(_tamper(_issue()))


def test_access_token_forged_with_another_key_under_a_known_kid() -> None:
    now = int(time.time())
    claims = {"sub": "u-mallory", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60,
              "data_scope": "all", "roles": ["admin"]}
    forged = jwt.encode(claims, ATTACKER.private_pem, algorithm="EdDSA", headers={"kid": KEY.kid})
    with pytest.raises(Unauthenticated):
        _verifier().verify(forged)


def test_access_token_unsigned_is_rejected() -> None:
    now = int(time.time())
    claims = {"sub": "u-mallory", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": KEY.kid})
    with pytest.raises(Unauthenticated):
        _verifier().verify(unsigned)


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "iss", "aud"])
def test_access_token_missing_required_claim(missing: str) -> None:
    now = int(time.time())
    claims = {"sub": "u-alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60}
    del claims[missing]
    token = jwt.encode(claims, KEY.private_pem, algorithm="EdDSA", headers={"kid": KEY.kid})
    with pytest.raises(Unauthenticated):
        _verifier().verify(token)


def test_access_token_not_yet_valid() -> None:
    now = int(time.time())
    claims = {"sub": "u-alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now + 600,
              "exp": now + 900}
    token = jwt.encode(claims, KEY.private_pem, algorithm="EdDSA", headers={"kid": KEY.kid})
    with pytest.raises(Unauthenticated):
        _verifier().verify(token)


def test_access_token_garbage() -> None:
    for token in ("", "abc", "a.b.c", "Bearer x.y.z"):
        with pytest.raises(Unauthenticated):
            _verifier().verify(token)


def test_jwks_rotation_accepts_old_and_new_keys() -> None:
    verifier = _verifier(KEY, NEW_KEY)
    assert verifier.verify(_issue(key=KEY)).subject == "u-alice"
    assert verifier.verify(_issue(key=NEW_KEY, subject="u-bob")).subject == "u-bob"
    # once the old key is retired, its tokens stop working
    with pytest.raises(Unauthenticated):
        _verifier(NEW_KEY).verify(_issue(key=KEY))


def test_jwks_document_shape() -> None:
    doc = json.loads(jwks_of(KEY.public_pem, NEW_KEY.public_pem))
    assert [k["kid"] for k in doc["keys"]] == [KEY.kid, NEW_KEY.kid]
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["alg"] == "EdDSA" for k in doc["keys"])
    assert KEY.kid == key_id(KEY.public_pem) != NEW_KEY.kid


# -------------------------------------------------------------------------------- principal


def test_principal_sign_verify_round_trip() -> None:
    token = PrincipalSigner(KEY.private_pem).sign(ALICE)
    assert PrincipalVerifier(KEY.public_pem).verify(token) == ALICE


def test_principal_claims_round_trip() -> None:
    assert Principal.from_claims(ALICE.to_claims()) == ALICE


def test_principal_verifier_accepts_any_configured_key() -> None:
    verifier = PrincipalVerifier(KEY.public_pem, NEW_KEY.public_pem)
    for key in (KEY, NEW_KEY):
        assert verifier.verify(PrincipalSigner(key.private_pem).sign(ALICE)) == ALICE


def test_principal_verifier_keys_from_concatenated_pems() -> None:
    pems = split_pems(KEY.public_pem + NEW_KEY.public_pem)
    assert len(pems) == 2
    verifier = PrincipalVerifier(*pems)
    assert verifier.verify(PrincipalSigner(NEW_KEY.private_pem).sign(ALICE)) == ALICE


def test_principal_verifier_needs_a_key() -> None:
    with pytest.raises(ValueError):
        PrincipalVerifier()


SERVICE_KEY = generate_keypair()


def test_service_token_verifies_as_the_service_with_narrow_permissions() -> None:
    verifier = PrincipalVerifier(KEY.public_pem, service_pems=(SERVICE_KEY.public_pem,))
    principal = verifier.verify(ServiceToken("contracts", SERVICE_KEY.private_pem)())
    assert principal == service_principal("contracts")
    assert principal.subject == "service:contracts" and principal.kind == "service"
    assert principal.permissions == SERVICE_PERMISSIONS == ("org.read", "customers.read")


def test_service_key_cannot_widen_its_permissions() -> None:
    greedy = Principal(subject="service:contracts", name="contracts", kind="service", data_scope=DataScope.ALL,
                       permissions=("*",), sees_sensitive=True)
    verifier = PrincipalVerifier(KEY.public_pem, service_pems=(SERVICE_KEY.public_pem,))
    principal = verifier.verify(PrincipalSigner(SERVICE_KEY.private_pem).sign(greedy))
    assert principal.permissions == SERVICE_PERMISSIONS and not principal.sees_sensitive


def test_service_key_cannot_sign_for_a_user() -> None:
    verifier = PrincipalVerifier(KEY.public_pem, service_pems=(SERVICE_KEY.public_pem,))
    with pytest.raises(Unauthenticated, match="service key"):
        verifier.verify(PrincipalSigner(SERVICE_KEY.private_pem).sign(ALICE))


def test_gateway_key_cannot_sign_a_service_principal() -> None:
    verifier = PrincipalVerifier(KEY.public_pem, service_pems=(SERVICE_KEY.public_pem,))
    with pytest.raises(Unauthenticated, match="service key"):
        verifier.verify(PrincipalSigner(KEY.private_pem).sign(service_principal("contracts")))


def test_service_principal_refused_where_service_keys_are_not_trusted() -> None:
    with pytest.raises(Unauthenticated, match="unknown key"):
        PrincipalVerifier(KEY.public_pem).verify(ServiceToken("contracts", SERVICE_KEY.private_pem)())


def test_unsigned_principal_rejected() -> None:
    claims = ALICE.to_claims() | {"aud": "crm-services", "exp": int(time.time()) + 60}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": KEY.kid})
    with pytest.raises(Unauthenticated):
        PrincipalVerifier(KEY.public_pem).verify(unsigned)


def test_principal_from_unknown_key_rejected() -> None:
    token = PrincipalSigner(ATTACKER.private_pem).sign(ALICE)
    with pytest.raises(Unauthenticated, match="unknown key"):
        PrincipalVerifier(KEY.public_pem).verify(token)


def test_principal_forged_under_a_known_kid_rejected() -> None:
    claims = ALICE.to_claims() | {"aud": "crm-services", "exp": int(time.time()) + 60}
    forged = jwt.encode(claims, ATTACKER.private_pem, algorithm="EdDSA", headers={"kid": KEY.kid})
    with pytest.raises(Unauthenticated):
        PrincipalVerifier(KEY.public_pem).verify(forged)


def test_principal_tampered_rejected() -> None:
    token = PrincipalSigner(KEY.private_pem).sign(ALICE)
    with pytest.raises(Unauthenticated):
        PrincipalVerifier(KEY.public_pem).verify(_tamper(token))


def test_principal_expired_rejected() -> None:
    claims = ALICE.to_claims() | {"aud": "crm-services", "iat": int(time.time()) - 600,
                                  "exp": int(time.time()) - 300}
    token = jwt.encode(claims, KEY.private_pem, algorithm="EdDSA", headers={"kid": KEY.kid})
    with pytest.raises(Unauthenticated):
        PrincipalVerifier(KEY.public_pem).verify(token)


def test_access_token_is_not_a_principal() -> None:
    """A user's bearer token signed by a key the service also trusts is still refused: wrong audience."""
    with pytest.raises(Unauthenticated):
        PrincipalVerifier(KEY.public_pem).verify(_issue())


def test_principal_with_malformed_claims_rejected() -> None:
    signer_claims = ALICE.to_claims() | {"data_scope": "galaxy", "aud": "crm-services",
                                         "exp": int(time.time()) + 60}
    token = jwt.encode(signer_claims, KEY.private_pem, algorithm="EdDSA", headers={"kid": KEY.kid})
    with pytest.raises(Unauthenticated, match="malformed"):
        PrincipalVerifier(KEY.public_pem).verify(token)


def test_current_principal_context() -> None:
    with pytest.raises(Unauthenticated):
        current_principal()
    bob = Principal(subject="u-bob")
    with use_principal(ALICE):
        assert current_principal() == ALICE
        with use_principal(bob):
            assert current_principal() == bob
        assert current_principal() == ALICE
    with pytest.raises(Unauthenticated):
        current_principal()
