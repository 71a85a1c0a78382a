"""The customer import benchmark (R-CUS-03), run by `make bench` inside the same suite.

1. Seeds `existing` customers straight into the customers database (COPY, with their tax IDs
   sealed and blind-indexed under the suite's field keys, exactly as the service stores them), so
   the import deduplicates against a realistically full table.
2. Writes a GBK CSV of `rows` customers, each with a contact; `MATCHING` of them carry the tax ID
   of an existing customer (skipped on match), the rest are new.
3. Imports it through the real path: resumable chunked upload through the gateway (1 MiB chunks),
   the background dry run (parsing, validation, normalisation, dedup), the commit (writes and
   outbox events), polling GET /api/v1/imports/{id} as a client would.
4. COPYs the same rows (customer + contact, plain values) into tables built LIKE customers and
   contacts (same indexes and generated columns) in the same database: the floor.
5. Does 2–3 for `small_rows` first, sampling the customers service's resident memory, so peak RSS
   at two file sizes shows whether memory grows with the file.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from crm_customers.domain.tax_id import uscc_check_char
from crmkit.crypto import FieldCipher

MATCHING = 0.05          # share of the file's rows that match an existing customer
CHUNK = 1024 * 1024      # the gateway's body limit
TAX_ID_FIELD = "customers.tax_id"
PHONE_FIELD = "contacts.phones"
INDUSTRIES = ("医疗器械", "电子", "机械设备", "化工", "汽车", "metals", "Plastics and rubber")
REGIONS = ("上海", "江苏", "浙江", "福建", "广东", "北京", "四川")
HEADER = ["客户名称", "统一社会信用代码", "行业", "地区", "状态", "标签", "联系人", "职务", "手机", "邮箱"]


def uscc(n: int) -> str:
    prefix = f"9131{n:013d}"
    return prefix + uscc_check_char(prefix)


def _row(n: int, tax_n: int) -> list[str]:
    return [f"基准测试{n}号精密制造有限公司", uscc(tax_n), INDUSTRIES[n % len(INDUSTRIES)], REGIONS[n % len(REGIONS)],
            "存续", "历史导入", f"联系人{n}", "采购经理", f"138{n % 100_000_000:08d}", f"buyer{n}@example.com"]


def write_file(path: Path, rows: int, *, first: int, existing: int, seed: int) -> list[list[str]]:
    """The import file (GBK, as Excel on Chinese Windows saves it); returns the rows for COPY.
    (Kept in memory here, in the load generator, for the COPY: the service never holds them.)"""
    rng = random.Random(seed)
    data = []
    with path.open("w", encoding="gbk", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for i in range(rows):
            n = first + i
            tax_n = rng.randrange(existing) if existing and rng.random() < MATCHING else 10_000_000 + n
            row = _row(n, tax_n)
            writer.writerow(row)
            data.append(row)
    return data


def cipher(keys: Any) -> FieldCipher:
    return FieldCipher.from_config(keys.field_keys, keys.field_index_key)


async def seed_existing(pool: asyncpg.Pool, count: int, field_cipher: FieldCipher) -> float:
    started = time.perf_counter()
    records = []
    for n in range(count):
        tax_id = uscc(n)
        records.append((uuid.uuid4(), f"存量客户{n}号有限公司", field_cipher.encrypt(tax_id, TAX_ID_FIELD),
                        field_cipher.blind_index(tax_id, TAX_ID_FIELD), REGIONS[n % len(REGIONS)], "domestic",
                        "active", "customer", "bench-seed", "", "/", 1, "bench-seed"))
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "customers", records=records,
            columns=["id", "name", "tax_id", "tax_id_index", "region", "origin", "status", "lifecycle_stage",
                     "owner_id", "team_id", "department_path", "version", "created_by"])
        await conn.execute("ANALYZE customers")
    return time.perf_counter() - started


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants (the launcher may wrap the service)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


class RssSampler:
    def __init__(self, pid: int | None, interval: float = 0.05) -> None:
        self.pid, self.interval, self.peak_kib, self.start_kib = pid, interval, 0, 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            if self.pid:
                self.peak_kib = max(self.peak_kib, _tree_rss_kib(self.pid))
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> RssSampler:
        if self.pid:
            self.start_kib = self.peak_kib = _tree_rss_kib(self.pid)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


async def _wait(api: httpx.AsyncClient, import_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        reply = await api.get(f"/api/v1/imports/{import_id}")
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.1)
    raise TimeoutError(f"import {import_id} did not reach {statuses}")


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


async def import_through_api(api: httpx.AsyncClient, path: Path, size: int) -> dict[str, Any]:
    """Upload in chunks, dry run, commit: timings and the final import."""
    started = time.perf_counter()
    made = await api.post("/api/v1/imports/uploads", json={"file_name": path.name, "size": size})
    assert made.status_code == 201, made.text
    upload_id = made.json()["id"]
    offset = 0
    for chunk in _chunks(path):
        reply = await api.put(f"/api/v1/imports/uploads/{upload_id}", content=chunk, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"bytes {offset}-{offset + len(chunk) - 1}/{size}"})
        assert reply.status_code == 200, reply.text
        offset += len(chunk)
    uploaded = time.perf_counter()
    started_import = await api.post(f"/api/v1/imports/uploads/{upload_id}/import",
                                    json={"dedup_key": "tax_id", "on_match": "skip"})
    assert started_import.status_code == 202, started_import.text
    import_id = started_import.json()["id"]
    checked = await _wait(api, import_id, "dry_run", "refused")
    assert checked["status"] == "dry_run", checked
    dry_run_done = time.perf_counter()
    committed = await api.post(f"/api/v1/imports/{import_id}/commit")
    assert committed.status_code == 202, committed.text
    done = await _wait(api, import_id, "done", "failed")
    assert done["status"] == "done", done
    finished = time.perf_counter()
    return {"job": done, "upload_s": uploaded - started, "dry_run_s": dry_run_done - uploaded,
            "commit_s": finished - dry_run_done, "total_s": finished - started}


async def copy_baseline(pool: asyncpg.Pool, rows: list[list[str]]) -> tuple[float, int]:
    """The same rows, plain, COPYed into tables like customers and contacts (indexes included);
    returns (seconds, rows copied)."""
    customers, contacts = [], []
    seen: set[str] = set()
    for r in rows:
        if r[1] in seen:
            continue  # a tax ID repeated within the file: the import rejects the repeat, COPY would fail
        seen.add(r[1])
        customer_id = uuid.uuid4()
        customers.append((customer_id, r[0], r[1], r[3], "domestic", "active", "prospect", "bench", "", "/", 1))
        contacts.append((uuid.uuid4(), customer_id, r[6], r[7], [r[8]], r[9], True, 1))
    async with pool.acquire() as conn:
        await conn.execute("DROP TABLE IF EXISTS bench_copy_contacts, bench_copy_customers")
        await conn.execute("CREATE TABLE bench_copy_customers (LIKE customers INCLUDING ALL)")
        await conn.execute("CREATE TABLE bench_copy_contacts (LIKE contacts INCLUDING ALL)")
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "bench_copy_customers", records=customers,
                columns=["id", "name", "tax_id", "region", "origin", "status", "lifecycle_stage", "owner_id",
                         "team_id", "department_path", "version"])
            await conn.copy_records_to_table(
                "bench_copy_contacts", records=contacts,
                columns=["id", "customer_id", "name", "title", "phones", "email", "is_key", "version"])
        elapsed = time.perf_counter() - started
        await conn.execute("DROP TABLE bench_copy_contacts, bench_copy_customers")
    return elapsed, len(customers)


async def run_import_bench(suite: Any, api: httpx.AsyncClient, *, rows: int, small_rows: int,
                           existing: int) -> dict[str, Any]:
    keys = suite.keys
    assert keys is not None
    service_pid = suite.pids().get("customers")
    pool = await asyncpg.create_pool(suite.database_url("customers", driver=None), min_size=1, max_size=2)
    work = Path(tempfile.mkdtemp(prefix="crm-import-bench-"))
    report: dict[str, Any] = {"rows": rows, "existing_customers": existing, "matching_share": MATCHING}
    try:
        report["seed_s"] = round(await seed_existing(pool, existing, cipher(keys)), 2)
        runs: dict[str, Any] = {}
        files = {}
        for label, count, first in (("small", small_rows, 0), ("full", rows, small_rows)):
            path = work / f"customers-{count}.csv"
            data = write_file(path, count, first=first, existing=existing, seed=count)
            files[label] = (path, os.stat(path).st_size)
        # The floor first (its tables are dropped before the imports run): the full file's rows.
        copy_s, copied = await copy_baseline(pool, data)
        del data
        for label in ("small", "full"):
            path, size = files[label]
            async with RssSampler(service_pid) as rss:
                result = await import_through_api(api, path, size)
            job = result["job"]
            processed = job["total"]
            runs[label] = {
                "rows": processed, "file_mib": round(size / 1048576, 2),
                "created": job["done"]["created"], "skipped": job["done"]["skipped"],
                "rejected": job["done"]["rejected"],
                "upload_s": round(result["upload_s"], 2), "dry_run_s": round(result["dry_run_s"], 2),
                "commit_s": round(result["commit_s"], 2), "total_s": round(result["total_s"], 2),
                "rows_per_s": round(processed / (result["dry_run_s"] + result["commit_s"]), 1),
                "rows_per_s_with_upload": round(processed / result["total_s"], 1),
                "service_rss_before_mib": round(rss.start_kib / 1024, 1),
                "service_peak_rss_mib": round(rss.peak_kib / 1024, 1),
            }
        full = runs["full"]
        report["copy"] = {"rows": copied, "seconds": round(copy_s, 3), "rows_per_s": round(copied / copy_s, 1)}
        report["import"] = runs
        report["import_over_copy_time"] = round((full["dry_run_s"] + full["commit_s"]) / copy_s, 1)
        report["import_rate_share_of_copy"] = round(full["rows_per_s"] / report["copy"]["rows_per_s"], 4)
        report["peak_rss_growth_mib"] = round(full["service_peak_rss_mib"] - runs["small"]["service_peak_rss_mib"],
                                              1)
    finally:
        await pool.close()
        shutil.rmtree(work, ignore_errors=True)
    return report

