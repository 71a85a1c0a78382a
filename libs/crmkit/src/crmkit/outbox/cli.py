"""`crm-outbox`: operator commands on a service's outbox.

    crm-outbox status                         backlog, oldest pending, replay window
    crm-outbox replay --since 2026-11-24T00:00Z [--until …]
    crm-outbox replay --from-id 1200 --to-id 1500

`replay` marks published events unpublished again; the running relay republishes them in their
original order. Consumers record processed event ids, so a replayed event has no second effect.
The database comes from CRM_DATABASE_URL, as for the service itself.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys

import asyncpg

from crmkit.outbox.relay import asyncpg_dsn


async def status(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE published_at IS NULL) AS pending,"
            " min(created_at) FILTER (WHERE published_at IS NULL) AS oldest_pending,"
            " min(id) AS first_id, max(id) AS last_id, min(created_at) AS window_start FROM outbox")
    finally:
        await conn.close()
    return (f"pending: {row['pending']}  oldest pending: {row['oldest_pending'] or '-'}\n"
            f"replay window: ids {row['first_id']}..{row['last_id']} since {row['window_start'] or '-'}")


async def replay(dsn: str, *, from_id: int | None, to_id: int | None, since: dt.datetime | None,
                 until: dt.datetime | None) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        result = await conn.execute(
            "UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL"
            " AND ($1::bigint IS NULL OR id >= $1) AND ($2::bigint IS NULL OR id <= $2)"
            " AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL OR created_at < $4)",
            from_id, to_id, since, until)
        await conn.execute("NOTIFY crm_outbox")
    finally:
        await conn.close()
    return int(result.split()[-1])


def _time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time with its UTC offset, e.g. 2026-11-24T08:00+08:00")
    return parsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="crm-outbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="backlog and replay window")
    rp = commands.add_parser("replay", help="republish a range of published events")
    rp.add_argument("--from-id", type=int)
    rp.add_argument("--to-id", type=int)
    rp.add_argument("--since", type=_time)
    rp.add_argument("--until", type=_time)
    args = parser.parse_args(argv)
    url = os.environ.get("CRM_DATABASE_URL")
    if not url:
        sys.exit("CRM_DATABASE_URL is not set")
    dsn = asyncpg_dsn(url)
    if args.command == "status":
        print(asyncio.run(status(dsn)))
        return
    if args.from_id is None and args.to_id is None and args.since is None:
        sys.exit("name a range: --from-id/--to-id or --since/--until")
    count = asyncio.run(replay(dsn, from_id=args.from_id, to_id=args.to_id, since=args.since, until=args.until))
    print(f"{count} events queued for republishing")
