"""Benchmarks the customers read and create paths layer by layer, and event latency.

Starts the suite with the launcher `make dev` uses (own ports and data dir), then measures at 1,
16 and 64 concurrent clients:
  - gateway  GET /api/v1/customers/{id}  and  POST /api/v1/customers  (HTTP → gRPC → PostgreSQL)
  - grpc     CustomersService/GetCustomer called directly (gRPC → PostgreSQL)
  - sql      the same row read with asyncpg (PostgreSQL alone)
and the event latency from commit to a JetStream consumer (p50/p99); then the customer import
benchmark (e2e/bench/imports.py: rows/s through upload, dry run and commit beside a raw COPY of the
same rows, and the service's peak memory at two file sizes); then the funnel on 100,000
opportunities (e2e/bench/funnel.py: GET /api/v1/reports/funnel p50/p99, whole pipeline, per team,
owner, quarter, team-scoped). Prints one JSON report.
The load generator shares the machine's cores with the suite, so absolute figures are lower
bounds; the ratios between layers, measured in the same run, are the point.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import nats

from crm.customers.v1 import customers_pb2 as pb
from crm.customers.v1 import customers_pb2_grpc
from crm_devstack import Suite
from crm_devstack.keys import AUDIENCE, ISSUER
from crmkit.auth import PRINCIPAL_METADATA_KEY, PrincipalSigner
from crmkit.auth.tokens import AccessTokenVerifier
from crmkit.grpc.client import channel
from e2e.bench.funnel import run_funnel_bench
from e2e.bench.imports import run_import_bench

CONCURRENCY = (1, 16, 64)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(call: Callable[[int], Awaitable[None]], clients: int, requests: int) -> dict[str, float]:
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    for i in range(min(50, requests)):  # warm-up: connections, caches, JIT-free but pool-filling
        await call(-1 - i)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "throughput_rps": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2)}


async def run(requests: int, events: int, *, import_rows: int = 100_000, import_small_rows: int = 20_000,
              import_existing: int = 100_000, funnel_opportunities: int = 0) -> dict[str, object]:
    data_dir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    # The per-caller rate limit would measure itself, not the layers: lift it for the run.
    unlimited = {"CRM_RATE_LIMIT_PER_MINUTE": "100000000"}
    with (data_dir / "suite.log").open("w") as log, Suite(data_dir, port_offset=2000, output=log, log_level="WARNING",
                                                          extra_env=unlimited) as suite:
        token = suite.token(user="bench", data_scope="all", roles=["admin"])
        headers = {"Authorization": f"Bearer {token}"}
        limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
        async with httpx.AsyncClient(base_url=suite.gateway_url, headers=headers, limits=limits,
                                     timeout=30) as api:
            created = await api.post("/api/v1/customers", json={"name": "Benchmark Medical Devices Co",
                                                                 "industry": "medical_devices"})
            customer_id = created.json()["id"]

            keys = suite.keys
            assert keys is not None
            principal = AccessTokenVerifier(keys.jwks, issuer=ISSUER, audience=AUDIENCE).verify(token)
            signer = PrincipalSigner(keys.principal_private_pem)
            grpc_channel = channel(suite.grpc_target("customers"))
            stub = customers_pb2_grpc.CustomersServiceStub(grpc_channel)
            metadata = ((PRINCIPAL_METADATA_KEY, signer.sign(principal)),)
            pool = await asyncpg.create_pool(suite.database_url("customers", driver=None), min_size=8, max_size=64)

            async def gateway_get(_: int) -> None:
                reply = await api.get(f"/api/v1/customers/{customer_id}")
                assert reply.status_code == 200, reply.text

            async def gateway_post(i: int) -> None:
                reply = await api.post("/api/v1/customers", json={"name": f"Bench customer {uuid.uuid4().hex[:12]}"})
                assert reply.status_code == 201, reply.text

            async def grpc_get(_: int) -> None:
                await stub.GetCustomer(pb.GetCustomerRequest(id=customer_id), metadata=metadata)

            customer_uuid = uuid.UUID(customer_id)

            async def sql_get(_: int) -> None:
                async with pool.acquire() as conn:
                    await conn.fetchrow("SELECT * FROM customers WHERE id = $1 AND deleted_at IS NULL",
                                        customer_uuid)

            report: dict[str, object] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                                         "requests_per_level": requests, "levels": {}}
            for clients in CONCURRENCY:
                level: dict[str, dict[str, float]] = {}
                for name, call in (("gateway_get", gateway_get), ("grpc_get", grpc_get), ("sql_get", sql_get),
                                   ("gateway_post", gateway_post)):
                    level[name] = await measure(call, clients, requests)
                level["ratios_p50"] = {
                    "gateway_over_grpc": round(level["gateway_get"]["p50_ms"] / level["grpc_get"]["p50_ms"], 2),
                    "grpc_over_sql": round(level["grpc_get"]["p50_ms"] / level["sql_get"]["p50_ms"], 2),
                }
                report["levels"][str(clients)] = level  # type: ignore[index]
            report["event_latency"] = await event_latency(api, suite.nats_url, events)
            if import_rows:
                report["customer_import"] = await run_import_bench(
                    suite, api, rows=import_rows, small_rows=import_small_rows, existing=import_existing)
            if funnel_opportunities:
                report["funnel"] = await run_funnel_bench(suite, api, opportunities=funnel_opportunities)
            await grpc_channel.close()
            await pool.close()
    return report


async def event_latency(api: httpx.AsyncClient, nats_url: str, events: int) -> dict[str, float]:
    """Commit → JetStream consumer: `ce-time` is stamped inside the committing transaction."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    latencies: list[float] = []
    done = asyncio.Event()
    marker = f"latency-{uuid.uuid4().hex[:8]}"

    async def on_event(msg: nats.aio.msg.Msg) -> None:
        await msg.ack()
        if marker.encode() not in msg.data:
            return
        sent = dt.datetime.fromisoformat(msg.headers["ce-time"].replace("Z", "+00:00"))
        latencies.append((dt.datetime.now(dt.UTC) - sent).total_seconds())
        if len(latencies) >= events:
            done.set()

    sub = await js.subscribe("crm.customers.customer.created", cb=on_event,
                             deliver_policy=nats.js.api.DeliverPolicy.NEW, manual_ack=True)
    for i in range(events):
        await api.post("/api/v1/customers", json={"name": f"{marker} {i}"})
    await asyncio.wait_for(done.wait(), 60)
    await sub.unsubscribe()
    await nc.drain()
    return {"events": len(latencies), "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--events", type=int, default=300, help="events for the latency measurement")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--import-rows", type=int, default=100_000, help="customer import: rows (0 skips it)")
    parser.add_argument("--import-small-rows", type=int, default=20_000,
                        help="customer import: the smaller file, for peak memory at two sizes")
    parser.add_argument("--import-existing", type=int, default=100_000,
                        help="customer import: existing customers to deduplicate against")
    parser.add_argument("--funnel-opportunities", type=int, default=100_000,
                        help="funnel: opportunities seeded before timing GET /api/v1/reports/funnel (0 skips it)")
    args = parser.parse_args()
    report = asyncio.run(run(args.requests, args.events, import_rows=args.import_rows,
                             import_small_rows=args.import_small_rows, import_existing=args.import_existing,
                             funnel_opportunities=args.funnel_opportunities))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
