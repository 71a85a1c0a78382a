"""No input makes the API answer 5xx (issue 12, "Done when"): a bounded schemathesis run over every
operation of gateway/openapi.json against the running suite, valid and invalid data alike, with a
fixed seed. Every answer is below 500, and every 4xx is problem+json.

Callers are admins (every permission, so requests reach the services instead of stopping at
403), several of them so that the per-user rate limit is not what answers. The bound is
CRM_FUZZ_EXAMPLES examples per operation (default 15), derandomized: the same cases each run.
This module runs last among the e2e tests (e2e/conftest.py): it creates configuration
(pipelines, approval and assignment rules, webhooks) that other scenarios must not meet.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from crm_devstack import Suite, demo
from crm_devstack.keys import login

OPENAPI = json.loads((Path(__file__).resolve().parents[1] / "gateway" / "openapi.json").read_text())
SCHEMA = schemathesis.openapi.from_dict(OPENAPI)
OPERATIONS = {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in SCHEMA.get_all_operations())}
EXAMPLES = int(os.environ.get("CRM_FUZZ_EXAMPLES", "15"))
FUZZERS = 4
# A Server-Sent Events stream never ends; its first answer (status and headers) is what is checked.
STREAMS = frozenset({"GET /api/v1/notifications/stream"})
# Signing out (without a `token`, or of a browser session) revokes the caller's own access token:
# each try gets a fresh one, or the shared admin tokens would answer 401 TOKEN_REVOKED from then on.
SIGN_OUT = frozenset({"POST /api/v1/auth/revoke", "DELETE /api/v1/auth/session"})
PROBLEM_JSON = "application/problem+json"
# A failure's curl command shows that an admin's token was sent (the case alone would not).
AS_SENT = {"Authorization": "Bearer <an admin's access token>"}
TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module")
def admin_tokens(suite: Suite, demo_org: dict[str, Any]) -> Iterator[Callable[..., str]]:
    """Round-robin bearer tokens of FUZZERS admins (the bootstrap admin and ones made here),
    signed in again before their tokens expire."""
    password = f"Fuzz-{uuid.uuid4().hex[:12]}"
    admin = login(suite.gateway_url, demo.ADMIN_LOGIN, demo.admin_password())
    logins = [(demo.ADMIN_LOGIN, demo.admin_password())]
    with httpx.Client(base_url=suite.gateway_url, timeout=10) as http:
        for n in range(FUZZERS - 1):
            name = f"fuzz-admin-{n}-{uuid.uuid4().hex[:6]}"
            made = http.post("/api/v1/users", headers={"Authorization": f"Bearer {admin}"},
                             json={"login": name, "display_name": name, "password": password, "roles": ["admin"]})
            assert made.status_code == 201, made.text
            logins.append((name, password))
    tokens: dict[str, tuple[str, float]] = {}
    turn = iter(range(1 << 62))

    def next_token(fresh: bool = False) -> str:
        user, secret = logins[next(turn) % len(logins)]
        if fresh:
            return login(suite.gateway_url, user, secret)
        token, signed_at = tokens.get(user, ("", 0.0))
        if time.monotonic() - signed_at > 240:  # access tokens live 600 s
            token, signed_at = login(suite.gateway_url, user, secret), time.monotonic()
            tokens[user] = (token, signed_at)
        return token

    yield next_token
    print(f"\nfuzz: {sum(TALLY[k] for k in ('2xx', '3xx', '4xx', '5xx'))} cases over {len(OPERATIONS)} "
          "operations: " + ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items())))


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_no_input_makes_an_operation_fail_on_the_server(operation: str, suite: Suite,
                                                        admin_tokens: Callable[..., str]) -> None:
    op = OPERATIONS[operation]
    strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))
    failures: list[str] = []
    session = requests.Session()

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=False,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def exercise(case: Any) -> None:
        headers = {"Authorization": f"Bearer {admin_tokens(fresh=operation in SIGN_OUT)}"}
        kwargs = case.as_transport_kwargs(base_url=suite.gateway_url, headers=headers)
        with session.request(**kwargs, timeout=20, stream=operation in STREAMS) as response:
            status = response.status_code
            TALLY[f"{status // 100}xx"] += 1
            TALLY[str(status)] += 1
            media = response.headers.get("content-type", "")
            if status >= 500:
                failures.append(f"{status} for {case.as_curl_command(AS_SENT)[:2000]}\n  → {response.text[:500]}")
            elif status >= 400 and not media.startswith(PROBLEM_JSON):
                failures.append(f"{status} as {media!r}, not problem+json, for {case.as_curl_command(AS_SENT)[:1000]}")

    exercise()
    session.close()
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:5])


CURSOR_LISTS = sorted(path for path, item in OPENAPI["paths"].items()
                      if any(p["name"] == "cursor" for p in item.get("get", {}).get("parameters", []))
                      and "{" not in path)
CURSORS_TAMPERED: Counter[str] = Counter()


def _tampered(token: str) -> list[str]:
    """The cursor's sort kept, its values edited by hand in every way that still decodes."""
    doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    values = doc["v"]
    variants = [[], [*values, "extra"], ["zz"] * len(values), [12345678901234567890] * len(values),
                [None] * len(values), [{"a": 1}] * len(values), [["x"]] * len(values)]
    return [base64.urlsafe_b64encode(json.dumps({"s": doc["s"], "v": v}).encode()).rstrip(b"=").decode()
            for v in variants]


@pytest.mark.parametrize("path", CURSOR_LISTS)
def test_a_cursor_edited_by_hand_is_a_client_error(path: str, suite: Suite,
                                                   admin_tokens: Callable[..., str]) -> None:
    """Every list's cursor (issue 12: the SAP records' 500): its values edited by hand are refused
    with 400 invalid-cursor (or, when they still make a sort key of the right type, serve a page),
    never a 500. Runs after the fuzz pass and the seeded demo data: most lists have two pages."""
    with httpx.Client(base_url=suite.gateway_url, timeout=20) as http:
        headers = {"Authorization": f"Bearer {admin_tokens()}"}
        first = http.get(path, headers=headers, params={"limit": 1})
        assert first.status_code == 200, first.text
        token = first.json().get("next_cursor")
        if not token:
            CURSORS_TAMPERED["lists with one page"] += 1
            return
        CURSORS_TAMPERED["lists"] += 1
        CURSORS_TAMPERED[path] += 1
        for tampered in _tampered(token):
            r = http.get(path, headers=headers, params={"limit": 1, "cursor": tampered})
            CURSORS_TAMPERED["tried"] += 1
            CURSORS_TAMPERED[str(r.status_code)] += 1
            assert r.status_code in (200, 400), f"{path} with a tampered cursor: {r.status_code} {r.text[:300]}"
            if r.status_code == 400:
                assert r.json()["reason"] == "INVALID_CURSOR", r.text


def test_most_lists_had_a_cursor_to_tamper_with() -> None:
    # A fresh suite has a second page in the lists of customers, leads, users and the audit trail.
    assert CURSORS_TAMPERED["lists"] >= 4 and CURSORS_TAMPERED["400"] >= 4 * 6, dict(CURSORS_TAMPERED)
    print(f"\ncursors: {dict(CURSORS_TAMPERED)}")
