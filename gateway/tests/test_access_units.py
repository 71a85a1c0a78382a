"""Unit tests of the gateway's access machinery: the permission check, the rate limiter, the
revoked-token deny set, the JWKS key ring and the API-key exchange cache. No servers."""

from __future__ import annotations

import asyncio

import pytest

from crm_gateway import permissions as p
from crm_gateway.api_keys import ApiKeyCache
from crm_gateway.jwks import KeyRing
from crm_gateway.ratelimit import RateLimiter
from crm_gateway.revocations import DenySet
from crm_identity.domain.model import PERMISSIONS as IDENTITY_PERMISSIONS
from crmkit.auth import Principal
from crmkit.auth.keys import generate_keypair, jwks_of
from crmkit.auth.tokens import issue_access_token
from crmkit.errors import Unauthenticated, Unavailable


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------- permissions

def test_vocabulary_is_identitys():
    gateway_only = {p.INDUSTRIES_MANAGE}  # to be added to identity's list (see the module docstring)
    assert set(p.VOCABULARY) - gateway_only <= set(IDENTITY_PERMISSIONS)


def test_people_need_the_permission_or_a_wildcard():
    rep = Principal(subject="u", permissions=("customers.read", "customers.write"))
    assert p.allows(rep, p.CUSTOMERS_WRITE) and not p.allows(rep, p.CUSTOMERS_DELETE)
    assert p.allows(Principal(subject="a", permissions=("*",)), p.AUDIT_READ)
    assert p.allows(Principal(subject="a", permissions=("customers.*",)), p.CUSTOMERS_DELETE)
    assert not p.allows(Principal(subject="a", permissions=("customers.*",)), p.ORG_READ)
    assert not p.allows(Principal(subject="nobody"), p.CUSTOMERS_READ)
    # scopes do not widen a person's permissions
    assert not p.allows(Principal(subject="u", scopes=("customers.write",)), p.CUSTOMERS_WRITE)


@pytest.mark.parametrize("scope", ["customers.read", "customers:read"])
def test_partner_clients_are_limited_by_their_scopes(scope):
    client = Principal(subject="pc_1", kind="client", scopes=(scope,), permissions=(scope,))
    assert p.allows(client, p.CUSTOMERS_READ)
    assert not p.allows(client, p.CUSTOMERS_WRITE)
    # permissions beyond the scopes do not count
    wide = Principal(subject="pc_2", kind="client", scopes=("customers.read",), permissions=("*",))
    assert not p.allows(wide, p.CUSTOMERS_WRITE)
    assert p.allows(Principal(subject="pc_3", kind="client", scopes=("customers:*",)), p.CUSTOMERS_DELETE)


# ---------------------------------------------------------------------------- rate limits

def test_token_bucket_bursts_then_refills_at_the_rate():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    decisions = [limiter.take("user:a", 6) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 6 + [False]
    assert decisions[5].remaining == 0
    denied = decisions[6]
    assert denied.retry_after == 10  # one token per 10 s at 6 a minute
    assert denied.headers()["Retry-After"] == "10" and denied.headers()["RateLimit-Limit"] == "6"
    assert limiter.take("user:b", 6).allowed  # buckets are per principal
    clock.now += 9.9
    assert not limiter.take("user:a", 6).allowed
    clock.now += 0.2
    assert limiter.take("user:a", 6).allowed
    assert not limiter.take("user:a", 6).allowed


async def test_token_bucket_is_exact_under_concurrency():
    limiter = RateLimiter(clock=Clock())

    async def one() -> bool:
        await asyncio.sleep(0)
        return limiter.take("client:x", 50).allowed

    results = await asyncio.gather(*(one() for _ in range(200)))
    assert sum(results) == 50


def test_limiter_keeps_a_bounded_number_of_buckets():
    limiter = RateLimiter(max_tracked=3, clock=Clock())
    for key in "abcde":
        limiter.take(key, 10)
    assert len(limiter._buckets) == 3


# ---------------------------------------------------------------------------- deny set

def test_deny_set_forgets_tokens_when_they_expire():
    clock = Clock()
    deny = DenySet(clock=clock)
    deny.add("t1", clock.now + 10)
    deny.add("t2", clock.now + 20)
    deny.add("old", clock.now - 1)  # expired already: nothing to refuse
    assert "t1" in deny and "t2" in deny and "old" not in deny and len(deny) == 2
    deny.add("t1", clock.now + 5)  # a shorter expiry does not shorten the refusal
    clock.now += 15
    assert "t1" not in deny and "t2" in deny
    clock.now += 10
    assert len(deny) == 0


# ---------------------------------------------------------------------------- key ring

def _token(key, **claims) -> str:
    return issue_access_token(key.private_pem, issuer="iss", audience="aud", subject="u", **claims)


async def test_key_ring_fetches_a_rotated_key_on_an_unknown_kid():
    old, new = generate_keypair(), generate_keypair()
    published = {"jwks": jwks_of(old.public_pem)}
    calls = []

    async def fetch() -> str:
        calls.append(1)
        return published["jwks"]

    clock = Clock()
    ring = KeyRing(None, issuer="iss", audience="aud", fetch=fetch, min_refresh_seconds=10, clock=clock)
    assert not ring.loaded
    assert await ring.refresh() and ring.loaded
    assert (await ring.verify(_token(old))).subject == "u"
    published["jwks"] = jwks_of(new.public_pem, old.public_pem)  # identity rotates
    clock.now += 11
    assert (await ring.verify(_token(new))).subject == "u"  # fetched at once, no restart
    assert len(calls) == 2
    # forged kids cannot make it ask identity more than once per min_refresh_seconds
    stranger = generate_keypair()
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await ring.verify(_token(stranger))
    assert len(calls) == 2
    clock.now += 11
    with pytest.raises(Unauthenticated):
        await ring.verify(_token(stranger))
    assert len(calls) == 3


async def test_key_ring_without_identity_keeps_static_keys_and_says_unavailable_without_keys():
    key = generate_keypair()

    async def down() -> str:
        raise ConnectionError("identity is down")

    ring = KeyRing(jwks_of(key.public_pem), issuer="iss", audience="aud", fetch=down)
    assert not await ring.refresh()
    assert (await ring.verify(_token(key))).subject == "u"  # the static key still works
    empty = KeyRing(None, issuer="iss", audience="aud", fetch=down)
    with pytest.raises(Unavailable):
        await empty.verify(_token(key))
    with pytest.raises(Unauthenticated):
        await empty.verify("not a token")


# ---------------------------------------------------------------------------- API keys

async def test_api_key_exchanges_are_cached_briefly_and_dropped_on_revocation():
    key = generate_keypair()
    clock = Clock(now=__import__("time").time())
    exchanged: list[str] = []

    async def exchange(api_key: str) -> str:
        exchanged.append(api_key)
        return issue_access_token(key.private_pem, issuer="i", audience="a", subject="pc_1", kind="client",
                                  token_id=f"jti-{len(exchanged)}")

    cache = ApiKeyCache(exchange, max_age_seconds=500, clock=clock)  # capped at 60
    first = await cache.access_token("crmk_secret")
    assert await cache.access_token("crmk_secret") == first and len(exchanged) == 1
    assert "crmk_secret" not in str(cache._entries)  # only its hash is kept
    clock.now += 61
    await cache.access_token("crmk_secret")
    assert len(exchanged) == 2
    cache.forget_token("jti-2")
    await cache.access_token("crmk_secret")
    assert len(exchanged) == 3
    cache.forget_client("pc_1")
    assert len(cache) == 0


def test_an_errors_metadata_never_replaces_the_standard_problem_members():
    import json

    from crm_gateway.problems import problem

    response = problem(409, "the contract is pending approval", reason="CONTRACT_PENDING", extra={
        "status": "pending_approval", "type": "x", "detail": "y", "trace_id": "z", "contract_id": "c-1"})
    body = json.loads(response.body)
    assert (body["status"], body["type"], body["detail"]) == (409, "/problems/contract-pending",
                                                              "the contract is pending approval")
    assert body["contract_id"] == "c-1" and body["trace_id"] != "z"
