"""R-issue 12 item 9: idempotency survives a crash of the gateway.

A second gateway process (the suite's own keeps serving) is started with the test-only fault
point that makes it exit right after the customers service answered a POST and before the answer
is kept in the gateway's key-value bucket: the crash the bucket alone could not survive. A new
gateway retries with the same Idempotency-Key; the customers service, which recorded the key in
the same transaction as the customer, answers with the response it kept, so there is exactly one
customer and the retry's answer is that customer.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from crm_devstack import Suite
from crm_devstack.config import resolve_command
from crmkit.embedded import spawn
from crmkit.testing.servers import free_port


@pytest.fixture
def gateway_process(suite: Suite, tmp_path: Path) -> Iterator:
    """Starts gateway processes on a port of their own; stops what is left of them at the end."""
    port = free_port()
    started: list[subprocess.Popen[bytes]] = []

    def start(**extra_env: str) -> tuple[subprocess.Popen[bytes], str]:
        env = suite.gateway_env() | {"CRM_HTTP_PORT": str(port), "CRM_IDEMPOTENCY_CLAIM_SECONDS": "1", **extra_env}
        env.pop("CRM_METRICS_PORT", None)  # the suite's gateway has it
        assert suite.config.gateway is not None
        log = (tmp_path / f"gateway-{len(started)}.log").open("wb")
        process = spawn(resolve_command(suite.config.gateway.serve, env), env=env, stdin=subprocess.DEVNULL,
                        stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        return process, f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


async def _ready(url: str, process: subprocess.Popen[bytes], eventually) -> None:
    async def answers() -> bool:
        assert process.poll() is None, f"the gateway exited with {process.returncode}"
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{url}/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(answers, timeout=60, what=f"gateway at {url} ready")


async def _answers_kept_naming(suite: Suite, name: str) -> list[str]:
    """The methods whose kept answer (a serialized response) carries `name`."""
    conn = await asyncpg.connect(suite.database_url("customers", driver=None))
    try:
        rows = await conn.fetch("SELECT method FROM idempotency_keys "
                                "WHERE position(convert_to($1, 'UTF8') in response) > 0", name)
        return [row["method"] for row in rows]
    finally:
        await conn.close()


async def test_retry_after_the_gateway_died_between_commit_and_keeping_the_answer(
        suite: Suite, sign_in, eventually, gateway_process) -> None:
    rep = sign_in("li.wei")
    name = f"Crash-Safe Valves {uuid.uuid4().hex[:8]} Co., Ltd."
    body = {"name": name, "industry": "machinery", "region": "Jiangsu"}
    headers = rep.headers | {"Idempotency-Key": str(uuid.uuid4())}

    crashing, url = gateway_process(CRM_TEST_CRASH_BEFORE_KEEPING_ANSWER="1")
    await _ready(url, crashing, eventually)
    async with httpx.AsyncClient(base_url=url, timeout=10) as api:
        with pytest.raises(httpx.TransportError):  # the process died before answering
            await api.post("/api/v1/customers", json=body, headers=headers)
    assert crashing.wait(30) == 70  # it exited at the fault point, after the service's commit

    # The service committed the customer and, with it, the key and the answer it gave.
    assert await _answers_kept_naming(suite, name) == ["/crm.customers.v1.CustomersService/CreateCustomer"]

    restarted, url = gateway_process()
    await _ready(url, restarted, eventually)
    async with httpx.AsyncClient(base_url=url, timeout=10) as api:
        async def retried() -> httpx.Response | None:
            reply = await api.post("/api/v1/customers", json=body, headers=headers)
            # 409 while the dead gateway's claim on the key is younger than the claim timeout
            return None if reply.status_code == 409 else reply

        first = await eventually(retried, timeout=30, what="the dead gateway's claim taken over")
        assert first.status_code == 201, first.text
        assert "Idempotent-Replayed" not in first.headers  # answered by the service, not the bucket
        customer = first.json()
        assert customer["name"] == name and customer["owner_id"] == rep.id

        found = (await api.get("/api/v1/customers", params={"name": name}, headers=rep.headers)).json()
        assert [c["id"] for c in found["items"]] == [customer["id"]]  # exactly one effect

        again = await api.post("/api/v1/customers", json=body, headers=headers)
        assert again.status_code == 201 and again.json() == customer
        assert again.headers["Idempotent-Replayed"] == "true"
        other = await api.post("/api/v1/customers", json=body | {"region": "Zhejiang"}, headers=headers)
        assert other.status_code == 422 and other.json()["reason"] == "IDEMPOTENCY_KEY_REUSED"
