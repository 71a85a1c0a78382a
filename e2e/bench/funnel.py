"""The funnel benchmark (R-OPP-04), run by `make bench` inside the same suite.

1. Seeds `opportunities` opportunities of the default pipeline straight into the opportunities
   database (COPY): 40 owners in 8 teams, created over the last 365 days, each with the stage
   history of its path (Qualification → … → the stage it reached; 15 % won, 20 % lost), every
   stay a few days long — about 3 history rows per opportunity — with what the service keeps for
   the funnel (each stay's end, each opportunity's furthest non-lost stage). Then ANALYZE.
2. Times GET /api/v1/reports/funnel through the gateway (HTTP → gRPC → one SQL statement) for the
   whole pipeline as an all-scope user, for one team, one owner, one quarter, and as a
   team-scoped manager (the data scope inside the query): p50/p99 over `runs` calls each.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
import uuid
from typing import Any

import asyncpg
import httpx

from crm_opportunities.domain.defaults import DEFAULT_PIPELINE_ID, default_stage_id

OPEN_STAGES = [default_stage_id(s) for s in (11, 12, 13, 14)]
WON, LOST = default_stage_id(15), default_stage_id(16)
PROBABILITY = {OPEN_STAGES[0]: 10, OPEN_STAGES[1]: 25, OPEN_STAGES[2]: 50, OPEN_STAGES[3]: 75, WON: 100, LOST: 0}
TEAMS = [f"bench-team-{t}" for t in range(8)]
OWNERS = [(f"bench-owner-{o}", TEAMS[o % len(TEAMS)]) for o in range(40)]


def _rows(count: int, now: dt.datetime, seed: int = 4) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rng = random.Random(seed)
    opportunities, history = [], []
    for i in range(count):
        opportunity_id = uuid.uuid4()
        owner, team = OWNERS[i % len(OWNERS)]
        created = now - dt.timedelta(days=rng.uniform(20, 365))
        reached = rng.randrange(len(OPEN_STAGES))
        path = OPEN_STAGES[:reached + 1]
        outcome = rng.random()
        if outcome < 0.15:
            path = [*path, WON]
        elif outcome < 0.35:
            path = [*path, LOST]
        at, previous = created, None
        for n, stage in enumerate(path):
            left = at + dt.timedelta(days=rng.uniform(1, 12))
            # Each stay's end is the next change's time; the last stay is current (as the service keeps it).
            history.append((opportunity_id, previous, stage, owner, at, left if n < len(path) - 1 else None))
            previous = stage
            at = left
        final = path[-1]
        status = "won" if final == WON else "lost" if final == LOST else "open"
        opportunities.append((
            opportunity_id, uuid.uuid4(), f"Bench opportunity {i}", DEFAULT_PIPELINE_ID, final,
            round(rng.uniform(1_000, 2_000_000), 2), "CNY", PROBABILITY[final], status,
            "price" if status == "lost" else None, owner, team, "/sales/", 1, created, at, owner,
            reached + 1 + (1 if final == WON else 0) * (len(OPEN_STAGES) - reached)))
    return opportunities, history


async def seed(database_url: str, count: int) -> dict[str, float]:
    now = dt.datetime.now(dt.UTC)
    opportunities, history = _rows(count, now)
    conn = await asyncpg.connect(database_url)
    try:
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "opportunities", records=opportunities,
            columns=["id", "customer_id", "name", "pipeline_id", "stage_id", "amount", "currency", "probability",
                     "status", "lost_reason", "owner_id", "team_id", "department_path", "version", "created_at",
                     "updated_at", "created_by", "furthest_position"])
        await conn.copy_records_to_table("stage_history", records=history,
                                         columns=["opportunity_id", "from_stage_id", "to_stage_id", "changed_by",
                                                  "changed_at", "left_at"])
        await conn.execute("ANALYZE opportunities; ANALYZE stage_history")
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {"opportunities": len(opportunities), "stage_history_rows": len(history), "seed_s": round(seconds, 1)}


async def _time(api: httpx.AsyncClient, params: dict[str, str], runs: int,
                headers: dict[str, str] | None = None) -> dict[str, float]:
    latencies = []
    reply = None
    for _ in range(runs + 2):  # two warm-up calls (plans, caches)
        started = time.perf_counter()
        reply = await api.get("/api/v1/reports/funnel", params=params, headers=headers)
        latencies.append(time.perf_counter() - started)
        assert reply.status_code == 200, reply.text
    latencies = sorted(latencies[2:])
    assert reply is not None
    return {"p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))] * 1000, 1),
            "opportunities_counted": sum(s["count"] for s in reply.json()["stages"])}


async def run_funnel_bench(suite: Any, api: httpx.AsyncClient, *, opportunities: int,
                           runs: int = 20) -> dict[str, object]:
    seeded = await seed(suite.database_url("opportunities", driver=None), opportunities)
    quarter_end = dt.date.today() - dt.timedelta(days=30)
    manager = suite.token(user="bench-manager", roles=["sales_manager"], team_ids=[TEAMS[0]], data_scope="team",
                          department_path="/sales/")
    cases = {
        "whole_pipeline": {},
        "one_team": {"team_id": TEAMS[1]},
        "one_owner": {"owner_id": OWNERS[2][0]},
        "one_quarter": {"from": (quarter_end - dt.timedelta(days=91)).isoformat(), "to": quarter_end.isoformat()},
    }
    timings = {name: await _time(api, params, runs) for name, params in cases.items()}
    timings["team_scoped_manager"] = await _time(api, {}, runs, headers={"Authorization": f"Bearer {manager}"})
    return {**seeded, "runs": runs, "gateway_funnel": timings}
