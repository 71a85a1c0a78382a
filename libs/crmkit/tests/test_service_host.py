"""The pieces of the service host a service's wiring uses: periodic background passes."""

from __future__ import annotations

import asyncio

import pytest

from crmkit.service import periodic


async def test_a_failing_pass_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    outcomes: list[str] = []
    third = asyncio.Event()

    async def run_pass() -> str:
        outcomes.append("pass")
        if len(outcomes) == 1:
            raise ConnectionError("the database is restarting")
        if len(outcomes) == 3:
            third.set()
        return "done"

    task = asyncio.create_task(periodic("sweep", run_pass, 0)())
    await asyncio.wait_for(third.wait(), timeout=10)
    task.cancel()
    assert len(outcomes) >= 3
    assert [r.message for r in caplog.records if r.levelname == "ERROR"][:1] == [
        "background pass failed; the next one tries again"]


async def test_no_pause_while_the_pass_says_there_is_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backlog is worked off pass after pass; the pause comes only when it is done."""
    pauses: list[float] = []
    backlog = [3, 2, 1, 0]
    done = asyncio.Event()
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        done.set()
        await real_sleep(3600)

    async def run_pass() -> int:
        return backlog.pop(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    task = asyncio.create_task(periodic("drain", run_pass, 30.0, busy=lambda left: bool(left))())
    await asyncio.wait_for(done.wait(), timeout=10)
    task.cancel()
    assert backlog == [] and pauses == [30.0]
