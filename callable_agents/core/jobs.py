"""Durable jobs and the worker loop.

A job is a row: written in the same transaction as the thing it is about (an inbound
message, a reply part), so accepted work survives a crash. Workers claim jobs with one
atomic ``UPDATE ... WHERE id = (SELECT ...) RETURNING`` statement:

* **one in flight per lane, order kept**: a job is claimable only when no earlier job of its
  lane is pending or running (lane = conversation id for turns and sends);
* **several processes share the work**: on PostgreSQL the inner select uses
  ``FOR UPDATE SKIP LOCKED``; SQLite serialises writers by itself;
* **crash safety**: a claim is a lease, renewed while the job runs; a job whose lease
  expired (its worker died) is claimable again.

Handlers are registered per job kind by the parts that own them (the conversation,
knowledge, and plugins through ``register_job_kinds``: :func:`register_job_kinds`). **Intakes** (:func:`register_intake`) turn other durable rows into jobs: the
worker runs them before each claim (the pipeline's files queued inbound messages). A
handler that raises :class:`RetryLater` or any exception is retried with
exponential backoff and jitter up to ``max_attempts``; :class:`PermanentFailure` ends it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, aliased

from callable_agents.core.contracts.jobs import JobHandler, JobKind
from callable_agents.core.models import Job, live_job, utcnow
from callable_agents.core.observability.metrics import count_job
from callable_agents.core.observability.pipeline import observed_job, traced_payload
from callable_agents.core.runtime import Runtime

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0
# At shutdown, running jobs get this long to finish before they are cancelled and given back.
STOP_GRACE_SECONDS = 5.0

# Takes some durable work in (creating jobs); returns how many rows it took, 0 when idle.
Intake = Callable[[Runtime], Awaitable[int]]


class RetryLater(Exception):
    """Transient failure: try again after ``delay`` seconds (or the backoff schedule)."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class Postpone(Exception):
    """Not yet: run the job again in ``delay`` seconds. Not a failure, so the attempt is not
    counted (a turn waiting out its channel's quiet window, :mod:`..conversation.turn.run`)."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"postponed {delay:.3f}s")
        self.delay = delay


class PermanentFailure(Exception):
    """The job cannot succeed; record the reason and stop retrying."""


@dataclass
class JobHandlers:
    """Handlers by job kind, kept in ``runtime.services.job_handlers``."""

    handlers: dict[str, JobHandler]
    intakes: dict[str, Intake]

    @classmethod
    def of(cls, runtime: Runtime) -> JobHandlers:
        found = runtime.services.job_handlers
        if found is None:
            found = runtime.services.job_handlers = cls({}, {})
        return found


def register_handler(runtime: Runtime, kind: str, handler: JobHandler) -> None:
    JobHandlers.of(runtime).handlers[kind] = handler


def register_job_kinds(runtime: Runtime, kinds: Iterable[JobKind]) -> None:
    """Run jobs of each kind with its handler (the kinds plugins registered)."""
    for kind in kinds:
        register_handler(runtime, kind.name, kind.handler)


def register_intake(runtime: Runtime, name: str, intake: Intake) -> None:
    """Have the worker run ``intake`` before it claims jobs, until it returns 0."""
    JobHandlers.of(runtime).intakes[name] = intake


async def take_in(runtime: Runtime) -> int:
    """Run every intake once; how many rows they took in all. An intake that fails is
    logged and tried again next time (its rows are durable)."""
    taken = 0
    for name, intake in JobHandlers.of(runtime).intakes.items():
        try:
            taken += await intake(runtime)
        except Exception:
            log.exception("intake %s failed; retrying on the next pass", name)
    return taken


def enqueue(
    session: AsyncSession | Session,
    workspace_id: str,
    kind: str,
    payload: dict[str, Any],
    *,
    lane: str | None = None,
    run_after: datetime | None = None,
    max_attempts: int = 8,
) -> Job:
    """Add a job in the caller's transaction (commit it with the data it is about)."""
    job = Job(
        workspace_id=workspace_id,
        kind=kind,
        lane=lane,
        payload=traced_payload(payload),
        run_after=run_after or utcnow(),
        max_attempts=max_attempts,
    )
    session.add(job)
    return job


def enqueue_many(
    session: Session,
    workspace_id: str,
    kind: str,
    payloads: list[dict[str, Any]],
    *,
    lane: str | None = None,
    max_attempts: int = 8,
    claim_for: tuple[str, float] | None = None,
    lane_busy: bool | None = None,
) -> list[Job]:
    """Add one job per payload in the caller's (synchronous) transaction, in one statement.

    ``claim_for=(worker_id, lease_seconds)``: when nothing else is pending or running in
    ``lane``, the jobs are added already claimed by that worker and returned, so it can run
    them as soon as the transaction commits instead of claiming them one by one (if it
    dies first, their lease expires and any worker reclaims them, in order). Otherwise, or
    without it, they are added pending and ``[]`` is returned. ``lane_busy``: whether the
    lane has a pending or running job, when the caller read it already in this transaction
    (:func:`lane_busy_exists` in a statement of its own), so it is not read again.
    """
    if not payloads:
        return []
    now = utcnow()
    claim: dict[str, Any] = {"status": "pending", "attempts": 0, "locked_by": None, "lease_until": None}
    if lane_busy is None and claim_for is not None and lane is not None:
        lane_busy = bool(session.scalar(_LANE_BUSY, {"lane": lane}))
    if claim_for is not None and lane is not None and not lane_busy:
        worker_id, lease_seconds = claim_for
        claim = {"status": "running", "attempts": 1, "locked_by": worker_id, "lease_until": now + timedelta(seconds=lease_seconds)}
    rows = [
        {
            "workspace_id": workspace_id, "kind": kind, "lane": lane, "payload": traced_payload(payload),
            "max_attempts": max_attempts,
            "run_after": now, "created_at": now, "updated_at": now, **claim,
        }
        for payload in payloads
    ]
    if claim["locked_by"] is None:
        session.execute(insert(Job.__table__), rows)
        return []
    return [Job(**row._mapping) for row in session.execute(_INSERT_RETURNING, rows)]


def lane_busy_exists(lane: Any) -> Any:
    """``EXISTS`` a pending or running job in ``lane`` (a value or a bind parameter), for a
    caller that reads it with other things in one statement (see ``lane_busy`` of
    :func:`enqueue_many`)."""
    table = Job.__table__
    return exists().where(table.c.lane == lane, live_job(table))


_LANE_BUSY = select(lane_busy_exists(bindparam("lane")))
_INSERT_RETURNING = insert(Job.__table__).returning(*Job.__table__.c, sort_by_parameter_order=True)


def backoff_delay(attempts: int) -> float:
    """Exponential backoff with full jitter: random in [base, min(cap, base * 2**attempts)]."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2 ** max(0, attempts - 1)))
    return random.uniform(BACKOFF_BASE_SECONDS, max(BACKOFF_BASE_SECONDS, ceiling))


@functools.cache
def _claim_statement(is_postgres: bool, kinds: tuple[str, ...] | None, skips_workspaces: bool = False) -> Any:
    """The claim ``UPDATE``, built once per shape (building it costs more than running it)."""
    now = bindparam("now", type_=Job.run_after.type)
    earlier = aliased(Job)
    runnable = (Job.status == "pending") | ((Job.status == "running") & (Job.lease_until < now))
    # `+ 0`: the lane's own jobs are found by its index (ix_jobs_lane, lane = ...), then
    # compared. An indexable `id <` let the planner, on a young table without statistics,
    # walk ix_jobs_live (every live job of every lane) for each candidate instead.
    blocked = exists().where(and_(earlier.lane == Job.lane, earlier.id + 0 < Job.id, live_job(earlier)))
    candidate = (
        select(Job.id)
        # live_job: the walk goes over live jobs only (ix_jobs_live), not every job ever done.
        .where(live_job(Job), runnable, Job.run_after <= now, (Job.lane.is_(None)) | ~blocked)
        .order_by(Job.id)
        .limit(1)
    )
    if kinds:
        candidate = candidate.where(Job.kind.in_(kinds))
    if skips_workspaces:
        candidate = candidate.where(Job.workspace_id.not_in(bindparam("full_workspaces", expanding=True, type_=Job.workspace_id.type)))
    if is_postgres:
        candidate = candidate.with_for_update(skip_locked=True, of=Job)
    table = Job.__table__
    return (
        update(table)  # Core, not ORM: the claimed row comes back as a plain row, read once
        .where(table.c.id == candidate.scalar_subquery())
        .values(
            status="running",
            attempts=table.c.attempts + 1,
            lease_until=bindparam("lease_until", type_=Job.lease_until.type),
            locked_by=bindparam("worker_id", type_=Job.locked_by.type),
            updated_at=now,
        )
        .returning(*table.c)
    )


async def claim(
    runtime: Runtime, worker_id: str, *, kinds: list[str] | None = None, skip_workspaces: Collection[str] = ()
) -> Job | None:
    """Claim the next runnable job, or None. One statement, so two workers never share one.

    ``skip_workspaces``: workspaces whose jobs not to claim now (they hold their share of the
    worker already).
    """
    now = utcnow()
    statement = _claim_statement(not runtime.db.is_sqlite, tuple(kinds) if kinds else None, bool(skip_workspaces))
    lease = timedelta(seconds=runtime.settings.job_lease_seconds)
    parameters: dict[str, Any] = {"now": now, "lease_until": now + lease, "worker_id": worker_id}
    if skip_workspaces:
        parameters["full_workspaces"] = list(skip_workspaces)
    # One statement, atomic alone: on PostgreSQL no transaction around it (two round trips less).
    row = await runtime.db.run(lambda session: session.connection().execute(statement, parameters).first(), transaction=False)
    return None if row is None else Job(**row._mapping)


_COMPLETE = (
    update(Job.__table__)
    .where(Job.__table__.c.id == bindparam("job_id"), Job.__table__.c.locked_by == bindparam("b_locked_by"))
    .values(status="done", lease_until=None, updated_at=bindparam("now"))
)


def completion_statement() -> Any:
    """The ``UPDATE`` that marks a job done (bind :func:`completion_parameters`), for a
    handler that completes its job in a statement of its own making (a data-modifying
    ``WITH`` on PostgreSQL)."""
    return _COMPLETE


def completion_parameters(job: Job) -> dict[str, Any]:
    """The parameters of :func:`completion_statement` for ``job``: ``job_id``,
    ``b_locked_by`` and ``now``."""
    return {"job_id": job.id, "b_locked_by": job.locked_by, "now": utcnow()}


def mark_done(session: Session, job: Job) -> None:
    """Mark ``job`` done in ``session``'s transaction (a handler's own, with the work it did)."""
    session.execute(_COMPLETE, completion_parameters(job))


async def complete(runtime: Runtime, job: Job, session: AsyncSession | None = None) -> None:
    """Mark done. Pass the handler's session to commit the job with the work it did."""
    if session is not None:
        await session.execute(_COMPLETE, completion_parameters(job))
        return
    await runtime.db.run(lambda own: mark_done(own, job))


async def fail(runtime: Runtime, job: Job, error: str, *, retry_delay: float | None, permanent: bool) -> None:
    now = utcnow()
    final = permanent or job.attempts >= job.max_attempts
    values: dict[str, Any] = {"last_error": error[:2000], "lease_until": None, "updated_at": now}
    if final:
        values["status"] = "failed"
    else:
        values["status"] = "pending"
        values["run_after"] = now + timedelta(seconds=retry_delay if retry_delay is not None else backoff_delay(job.attempts))
    statement = update(Job).where(Job.id == job.id, Job.locked_by == job.locked_by).values(**values)
    await runtime.db.run(lambda session: session.execute(statement))


async def _release(runtime: Runtime, job: Job, delay: float = 0) -> None:
    """Undo ``job``'s claim (if still ours): pending again, runnable after ``delay`` seconds,
    the attempt not counted."""
    now = utcnow()
    statement = (
        update(Job)
        .where(Job.id == job.id, Job.locked_by == job.locked_by, Job.status == "running")
        .values(
            status="pending", attempts=Job.attempts - 1, locked_by=None, lease_until=None,
            run_after=now + timedelta(seconds=delay), updated_at=now,
        )
    )
    try:
        await runtime.db.run(lambda session: session.execute(statement))
    except Exception:  # the database is going away too: the lease will free it
        log.warning("could not release job %s (%s); it runs again when its lease expires", job.id, job.kind)


async def _renew_lease(runtime: Runtime, job: Job) -> None:
    lease_seconds = runtime.settings.job_lease_seconds
    while True:
        await asyncio.sleep(lease_seconds / 3)
        statement = (
            update(Job)
            .where(Job.id == job.id, Job.locked_by == job.locked_by, Job.status == "running")
            .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
        )
        await runtime.db.run(lambda session: session.execute(statement))


async def run_job(runtime: Runtime, job: Job, *, handler: JobHandler | None = None) -> None:
    """Run one claimed job through its handler (or ``handler``), recording the outcome."""
    handler = handler or JobHandlers.of(runtime).handlers.get(job.kind)
    if handler is None:
        await fail(runtime, job, f"no handler for job kind {job.kind!r}", retry_delay=30, permanent=False)
        return
    with observed_job(job.id, job.kind, job.workspace_id, job.payload):
        await _run_handler(runtime, job, handler)


async def _run_handler(runtime: Runtime, job: Job, handler: JobHandler) -> None:
    renewing = asyncio.create_task(_renew_lease(runtime, job))
    outcome = "done"
    try:
        await handler(runtime, job)
    except PermanentFailure as exc:
        outcome = "failed"
        log.warning("job %s (%s) failed permanently: %s", job.id, job.kind, exc)
        await fail(runtime, job, str(exc), retry_delay=None, permanent=True)
    except Postpone as exc:
        await _release(runtime, job, exc.delay)
    except RetryLater as exc:
        outcome = "retry"
        log.info("job %s (%s) will be retried: %s", job.id, job.kind, exc)
        await fail(runtime, job, str(exc), retry_delay=exc.delay, permanent=False)
    except asyncio.CancelledError:
        outcome = "released"
        # Stopped (a server shutting down): give the job back now rather than after its lease,
        # so the next worker (this server restarted) runs it at once. A handler commits its
        # work with the job's completion, so a running job has committed nothing; a send
        # cut short may have reached its provider, exactly as when a lease expires.
        await asyncio.shield(_release(runtime, job))
        raise
    except Exception as exc:
        outcome = "error"
        log.exception("job %s (%s) failed", job.id, job.kind)
        await fail(runtime, job, f"{type(exc).__name__}: {exc}", retry_delay=None, permanent=False)
    finally:
        renewing.cancel()
        count_job(job.kind, outcome)


def default_workspace_share(concurrency: int) -> int:
    """How many of a worker's slots one workspace may hold: all but two (at least one).

    One tenant's slow or hung model then cannot hold every slot: two stay for the others,
    while a tenant alone on the server still gets almost all of the worker.
    """
    return max(1, concurrency - 2)


class Worker:
    """Claims and runs jobs until stopped; up to ``concurrency`` at once (different lanes).

    No workspace holds more than ``per_workspace`` of them (fair scheduling): a tenant whose
    model hangs waits on its own turns, not on everyone's. ``wake()`` makes an idle worker
    look for work at once (the pipeline calls it after enqueueing) instead of waiting for the
    next poll.
    """

    def __init__(
        self, runtime: Runtime, *, concurrency: int = 8, poll_seconds: float = 0.25, per_workspace: int | None = None
    ) -> None:
        self.runtime = runtime
        self.concurrency = concurrency
        self.per_workspace = per_workspace or default_workspace_share(concurrency)
        self.poll_seconds = poll_seconds
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wakeup = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._workspace_of: dict[asyncio.Task[None], str] = {}
        self._held: Counter[str] = Counter()
        # When a claim skipping the full workspaces last found nothing, and whether work was
        # queued since (see _others_may_have_work).
        self._others_idle_at = float("-inf")
        self._queued_since = False

    def wake(self) -> None:
        """Work was queued: look for it now."""
        self._queued_since = True
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not kill the worker
                log.exception("worker loop error; retrying")
                await asyncio.sleep(1)

    async def run_once(self) -> None:
        # Cleared before looking, not after: a wake() while this pass looks is not lost.
        self._wakeup.clear()
        took_in = await take_in(self.runtime) > 0
        while len(self._running) < self.concurrency:
            full = [workspace for workspace, held in self._held.items() if held >= self.per_workspace]
            if full and not self._others_may_have_work():
                break
            if full:
                self._queued_since = False  # what is queued from now on, the next look finds
            job = await claim(self.runtime, self.worker_id, skip_workspaces=full)
            if job is None:
                if full:
                    self._others_idle_at = asyncio.get_running_loop().time()
                break
            task = asyncio.create_task(run_job(self.runtime, job))
            self._running.add(task)
            self._workspace_of[task] = job.workspace_id
            self._held[job.workspace_id] += 1
            task.add_done_callback(self._finished)
        if took_in and len(self._running) < self.concurrency:
            return  # the intake takes a batch at a time: more may be queued, look again at once
        # Idle or full: until woken (new work, a job finished) or the next poll. asyncio.timeout,
        # not wait_for: on Python 3.11 wait_for drops a cancellation that arrives as the wait
        # ends (CPython gh-86296), and the worker, told to stop, would run on forever.
        try:
            async with asyncio.timeout(self.poll_seconds):
                await self._wakeup.wait()
        except TimeoutError:
            pass

    def _others_may_have_work(self) -> bool:
        """Whether a claim for the workspaces not at their share may find something, when the
        others are: yes if work was queued since one last found nothing, or that was a poll
        ago (a retry or a delayed turn comes due with no wake-up). Without this, a worker
        busy with one tenant's backlog sent an empty claim after every job it finished,
        each walking that backlog."""
        if self._queued_since:
            return True
        return asyncio.get_running_loop().time() - self._others_idle_at >= self.poll_seconds

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        workspace = self._workspace_of.pop(task, None)
        if workspace is not None:
            self._held[workspace] -= 1
            if self._held[workspace] <= 0:
                del self._held[workspace]
        self._wakeup.set()  # a lane (or a workspace's share) may have become free

    async def drain(self, timeout: float = 30, *, lanes: list[str] | None = None) -> None:
        """Run jobs until none is pending or running, including ones scheduled shortly
        (tests, ``callable chat``). ``lanes`` limits the wait to those lanes' jobs."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if await take_in(self.runtime):
                continue
            job = await claim(self.runtime, self.worker_id)
            if job is not None:
                await run_job(self.runtime, job)
                # Checked before claiming again: when the last job leaves nothing behind, a
                # read ends the drain without another (write-locking) claim.
                if await self._settled(lanes):
                    return
                continue
            if await self._settled(lanes):
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("jobs still pending after drain timeout")

    async def _settled(self, lanes: list[str] | None) -> bool:
        """Nothing running, pending or left for an intake to take in."""
        return not self._running and not await self._outstanding(lanes) and not await take_in(self.runtime)

    async def _outstanding(self, lanes: list[str] | None) -> bool:
        query = _outstanding_statement(lanes is not None)
        parameters = {"lanes": lanes} if lanes is not None else {}
        return await self.runtime.db.run(lambda session: session.scalar(query, parameters) is not None, write=False)

    async def stop(self, grace_seconds: float = 0) -> None:
        """Let running jobs finish for up to ``grace_seconds``, then cancel the rest, which
        give their claims back (see :func:`run_job`). Call after the claiming loop stopped."""
        if self._running and grace_seconds > 0:
            await asyncio.wait(list(self._running), timeout=grace_seconds)
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def aclose(self) -> None:
        """At shutdown (``close_runtime``): stop, giving running jobs a few seconds to finish."""
        await self.stop(grace_seconds=STOP_GRACE_SECONDS)


@functools.cache
def _outstanding_statement(in_lanes: bool) -> Any:
    query = select(Job.id).where(live_job(Job)).limit(1)
    if in_lanes:
        query = query.where(Job.lane.in_(bindparam("lanes", expanding=True, type_=Job.lane.type)))
    return query


def worker_of(runtime: Runtime) -> Worker | None:
    return runtime.services.worker


def wake_worker(runtime: Runtime) -> None:
    worker = worker_of(runtime)
    if worker is not None:
        worker.wake()


def start_worker(runtime: Runtime, *, concurrency: int = 8) -> asyncio.Task[None]:
    worker = Worker(runtime, concurrency=concurrency)
    runtime.services.worker = worker
    return asyncio.create_task(worker.run(), name="callable-worker")
