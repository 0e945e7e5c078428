"""Durable jobs: the claim and lane checks are answered from indexes (SQLite's plans; on
PostgreSQL, over live jobs only, however many are finished)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from psycopg.sql import Literal
from sqlalchemy import event, text

from callable_agents.core.jobs import Worker, claim, complete, enqueue, enqueue_many, register_handler, register_intake
from callable_agents.core.models import Job, utcnow
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


@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("plan_cache_mode", ["auto", "force_generic_plan"])
@pytest.mark.parametrize("statistics", ["analyzed", "none yet"])
async def test_a_claim_reads_live_jobs_only_however_many_are_done(
    runtime: Runtime, plan_cache_mode: str, statistics: str
) -> None:
    """Finished jobs are kept, so they are most of the table. With statistics, PostgreSQL
    walked the primary key oldest first over every one of them to the first runnable job:
    the claim must walk the live jobs' partial index instead and stop at the first, in a
    custom plan and in the generic plan a prepared claim gets (which proves the index's
    predicate only from values written into the statement). A young table has no statistics
    yet (autovacuum analyzes it within a minute or so) and the planner sorts the live jobs
    instead: then the claim may read each live job once, but never a finished one, and
    never every live job again for each (the lane checks go by lane)."""
    _agent, channel = await make_agent_channel(runtime)
    finished = 3000 if statistics == "analyzed" else 300  # young: a table without statistics is small
    async with runtime.db.session() as session:
        await session.execute(
            text(
                "INSERT INTO jobs (workspace_id, kind, lane, payload, status, attempts, max_attempts, run_after, created_at, updated_at)"
                " SELECT :workspace, 'noop', 'lane-' || (n % 40), '{}', 'done', 1, 3, now(), now(), now()"
                " FROM generate_series(1, :finished) AS n"
            ),
            {"workspace": channel.workspace_id, "finished": finished},
        )
        enqueue(session, channel.workspace_id, "noop", {"n": 1}, lane="lane-7")  # behind the lane's finished jobs
    async with runtime.db.session() as session:  # and a backlog behind it
        await session.execute(
            text(
                "INSERT INTO jobs (workspace_id, kind, lane, payload, status, attempts, max_attempts, run_after, created_at, updated_at)"
                " SELECT :workspace, 'noop', 'backlog-' || n, '{}', 'pending', 0, 3, now(), now(), now()"
                " FROM generate_series(1, 300) AS n"
            ),
            {"workspace": channel.workspace_id},
        )
    if statistics == "analyzed":
        async with runtime.db.session() as session:
            await session.execute(text("ANALYZE jobs"))

    sent: list[tuple[str, Any]] = []

    def record(_conn: object, _cursor: object, statement: str, parameters: Any, *_args: object) -> None:
        if statement.startswith("UPDATE jobs SET status"):
            sent.append((statement, parameters))

    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", record)
    try:
        claimed = await claim(runtime, "worker-1")
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", record)
    assert claimed is not None and claimed.payload == {"n": 1}
    [(statement, parameters)] = sent

    # A prepared statement, as the driver prepares a claim it runs often: EXPLAIN of the
    # statement itself would plan it with its values in, whatever plan_cache_mode says.
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    prepared = re.sub(r"%\((\w+)\)s", lambda found: f"${names.index(found[1]) + 1}", statement)
    arguments = ", ".join(Literal(parameters[name]).as_string() for name in names)

    def explain(session: Any) -> dict[str, Any]:
        connection = session.connection()
        connection.exec_driver_sql(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
        connection.exec_driver_sql("UPDATE jobs SET status = 'pending', attempts = 0, locked_by = NULL WHERE id = %(id)s", {"id": claimed.id})
        connection.exec_driver_sql(f"PREPARE claim_under_test AS {prepared}")
        try:
            rows = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim_under_test({arguments})").scalar_one()
        finally:
            connection.exec_driver_sql("DEALLOCATE claim_under_test")
        session.rollback()  # EXPLAIN ANALYZE ran the claim: not kept
        plan: dict[str, Any] = (json.loads(rows) if isinstance(rows, str) else rows)[0]["Plan"]
        return plan

    plan = await runtime.db.run(explain)
    scans = list(_plan_nodes(plan))
    walk = [node for node in scans if node.get("Alias") == "jobs_2"]
    read = sum(node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0) for node in walk)
    if statistics == "analyzed":
        assert [node.get("Index Name") for node in walk] == ["ix_jobs_live"], scans
        assert read < 10, scans
    else:
        assert walk and read <= 301, scans  # the live jobs, each once
    lane_checks = [node for node in scans if node.get("Alias") == "jobs_1"]
    assert lane_checks and all(node.get("Index Name") == "ix_jobs_lane" for node in lane_checks), scans
    assert all(node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0) <= 1 for node in lane_checks), scans


def _plan_nodes(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


async def test_a_worker_busy_with_one_workspace_claims_once_a_job(sqlite_runtime: Runtime) -> None:
    """A workspace at its share of the worker leaves the other slots to the others; a worker
    busy with one tenant's backlog used to follow every job it finished with a claim for
    those others (finding none) and a second look at once: three claims a job."""
    runtime = sqlite_runtime
    _agent, channel = await make_agent_channel(runtime)
    done: list[int] = []

    async def work(runtime: Runtime, job: Job) -> None:
        await asyncio.sleep(0.005)
        done.append(job.payload["n"])
        await complete(runtime, job)

    register_handler(runtime, "work", work)
    jobs = 30
    async with runtime.db.session() as session:
        for n in range(jobs):
            enqueue(session, channel.workspace_id, "work", {"n": n}, lane=f"lane-{n}")
    plans = QueryPlans(runtime)
    await plans.start()
    worker = Worker(runtime, concurrency=4)
    assert worker.per_workspace == 2
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(20):
            while len(done) < jobs:
                await asyncio.sleep(0.01)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.stop()
    await plans.explain()
    claims = [statement for statement in plans.statements if "jobs.attempts +" in statement and "RETURNING" in statement]
    assert sorted(done) == list(range(jobs))
    # One a job, and a look for the other workspaces' work now and then (a poll apart).
    assert jobs <= len(claims) <= jobs + 8, len(claims)


async def test_another_workspaces_job_that_comes_due_is_claimed_while_one_workspace_keeps_the_worker_busy(
    sqlite_runtime: Runtime,
) -> None:
    """A job scheduled for later wakes no worker when it comes due: a worker kept busy by
    another workspace's backlog still looks for it, within a poll."""
    runtime = sqlite_runtime
    _agent, busy = await make_agent_channel(runtime, workspace_name="Busy")
    _agent, other = await make_agent_channel(runtime, workspace_name="Other")
    finished_at: dict[str, float] = {}
    loop = asyncio.get_running_loop()

    async def work(runtime: Runtime, job: Job) -> None:
        await asyncio.sleep(0.05)
        finished_at[job.payload["name"]] = loop.time()
        await complete(runtime, job)

    register_handler(runtime, "work", work)
    worker = Worker(runtime, concurrency=4, poll_seconds=0.1)
    async with runtime.db.session() as session:
        for n in range(60):  # 60 x 50 ms, two at a time: 1.5 s of the busy workspace's work
            enqueue(session, busy.workspace_id, "work", {"name": f"busy-{n}"}, lane=f"busy-{n}")
        enqueue(session, other.workspace_id, "work", {"name": "due"}, run_after=utcnow() + timedelta(seconds=0.3))
    started = loop.time()
    running = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(20):
            while len(finished_at) < 61:
                await asyncio.sleep(0.01)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.stop()
    assert finished_at["due"] - started < 1.0  # due at 0.3 s, then a poll (0.1 s) and its run (0.05 s)
    assert finished_at["due"] < max(finished_at.values()) - 0.5  # long before the backlog ended


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
