"""Durable jobs: the claim and lane checks are answered from indexes on SQLite."""

from __future__ import annotations

import asyncio

import pytest

from callable_agents.core.jobs import Worker, claim, complete, enqueue, enqueue_many, register_handler, register_intake
from callable_agents.core.models import Job
from callable_agents.core.runtime import Runtime
from tests.core.pipeline_helpers import make_agent_channel
from tests.core.sqlite_plans import QueryPlans, table_scans


async def test_claims_and_lane_checks_search_indexes(sqlite_runtime: Runtime) -> None:
    """SQLite has no statistics here: a query with both a lane and a status condition may
    pick the status index and walk every pending job. These run for every job."""
    runtime = sqlite_runtime
    _agent, channel = await make_agent_channel(runtime)
    async with runtime.db.session() as session:
        for lane in ("lane-a", "lane-b"):
            enqueue(session, channel.workspace_id, "noop", {}, lane=lane)
    plans = QueryPlans(runtime)
    await plans.start()
    claimed = await claim(runtime, "worker-1")
    await claim(runtime, "worker-1", kinds=["noop"])
    await runtime.db.run(
        lambda session: enqueue_many(session, channel.workspace_id, "noop", [{}], lane="lane-a", claim_for=("worker-1", 60))
    )
    await Worker(runtime)._outstanding(["lane-a"])
    found = await plans.explain()

    assert claimed is not None
    assert {statement.split()[0] for statement in plans.statements} >= {"SELECT", "INSERT", "UPDATE"}
    assert table_scans(found) == []
    # The claim's "an earlier job of this lane is pending or running" check, and the reads of a lane.
    blocked_checks = [detail for _, detail in found if "jobs_1" in detail]
    lane_reads = [detail for statement, detail in found if statement.startswith("SELECT") and "lane" in statement]
    assert blocked_checks and all("ix_jobs_lane" in detail for detail in blocked_checks)
    assert lane_reads and all("ix_jobs_lane" in detail for detail in lane_reads if detail.startswith("SEARCH"))


async def test_intakes_run_before_claims_and_one_that_fails_is_retried(
    sqlite_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """An intake turns durable rows into jobs; the worker runs it before it claims, and an
    intake that raises is logged and run again on the next pass, without stopping the worker."""
    runtime = sqlite_runtime
    _agent, channel = await make_agent_channel(runtime)
    calls: list[str] = []
    ran: list[int] = []

    async def flaky_intake(runtime: Runtime) -> int:
        calls.append("intake")
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        if len(calls) == 2:
            async with runtime.db.session() as session:
                enqueue(session, channel.workspace_id, "noop", {"n": 1}, lane="lane-a")
            return 1
        return 0

    async def noop(runtime: Runtime, job: Job) -> None:
        ran.append(job.payload["n"])
        await complete(runtime, job)

    register_intake(runtime, "flaky", flaky_intake)
    register_handler(runtime, "noop", noop)
    worker = Worker(runtime, poll_seconds=0.01)
    await worker.run_once()  # the intake fails: logged, the pass goes on
    assert "intake flaky failed" in caplog.text and ran == []
    await worker.drain(timeout=5)
    assert ran == [1] and len(calls) >= 3


async def test_a_worker_told_to_stop_as_it_is_woken_stops(sqlite_runtime: Runtime) -> None:
    """A cancellation that lands just as the idle wait ends must stop the worker (Python 3.11's
    ``asyncio.wait_for`` returned the wait's result instead and the worker ran on forever)."""
    for turns in range(6):  # where the cancellation lands relative to the wake-up
        worker = Worker(sqlite_runtime, poll_seconds=30)
        task = asyncio.create_task(worker.run())
        for _ in range(200):  # until it waits idle (it found nothing to do)
            await asyncio.sleep(0.005)
            if not worker._wakeup.is_set() and not worker._running:
                break
        await asyncio.sleep(0.05)
        worker.wake()
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=3)
        assert done == {task} and task.cancelled(), f"still running after a cancel {turns} loop turn(s) after the wake-up"
