"""The PostgreSQL pool's connection checks: an idle connection is pinged before use, a busy
one is not (a ping per checkout was a round trip per transaction).

A connection's server process is ended from outside (``pg_terminate_backend``), as a
database restart or a dropped socket would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from callable_agents.core.config import async_database_url
from callable_agents.core.db import Database

IDLE_SECONDS = 0.3


@pytest.fixture
async def db(fresh_postgres_url: str) -> AsyncIterator[Database]:
    database = Database(async_database_url(fresh_postgres_url), idle_ping_seconds=IDLE_SECONDS)
    try:
        yield database
    finally:
        await database.dispose()


async def _backend_pid(db: Database) -> int:
    async with db.engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def _terminate(admin_url: str, pid: int) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


async def test_an_idle_connection_that_died_is_replaced_before_use(db: Database, fresh_postgres_url: str) -> None:
    first = await _backend_pid(db)
    await asyncio.sleep(IDLE_SECONDS * 2)
    _terminate(fresh_postgres_url, first)
    # Idle long enough to be pinged: the dead connection is found and replaced, unseen.
    second = await _backend_pid(db)
    assert second != first


async def test_a_connection_in_use_is_not_pinged_and_a_failure_renews_the_pool(
    db: Database, fresh_postgres_url: str
) -> None:
    first = await _backend_pid(db)
    _terminate(fresh_postgres_url, first)
    # Back in the pool moments ago: used without a ping, so the statement meets the dead
    # connection (with a ping per checkout it would have been replaced first).
    with pytest.raises(DBAPIError) as failed:
        await _backend_pid(db)
    assert failed.value.connection_invalidated
    # The failure invalidated the pool: the caller's next try gets a new connection.
    assert await _backend_pid(db) != first


async def test_reads_and_lone_statements_run_without_a_transaction_around_them(db: Database) -> None:
    """``run(write=False)`` and ``run(transaction=False)`` send no BEGIN/COMMIT: each statement
    is its own transaction (a new transaction id each time); ``run()`` is one transaction."""

    def two_transaction_ids(session: Session) -> tuple[int, int]:
        first = session.execute(text("SELECT pg_current_xact_id()::text::bigint")).scalar_one()
        second = session.execute(text("SELECT pg_current_xact_id()::text::bigint")).scalar_one()
        return int(first), int(second)

    first, second = await db.run(two_transaction_ids)
    assert first == second
    first, second = await db.run(two_transaction_ids, write=False)
    assert first != second
    first, second = await db.run(two_transaction_ids, transaction=False)
    assert first != second
    # The connection went back to the pool in transaction mode: run() is one transaction again.
    first, second = await db.run(two_transaction_ids)
    assert first == second
