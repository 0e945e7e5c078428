"""The checkpointer's own tables (LangGraph's migrations) are set up once, however many
processes start together on a new PostgreSQL database."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from callable_agents.core.config import async_database_url
from callable_agents.core.conversation.turn.memory import Memory
from callable_agents.core.db import Database

STARTING_TOGETHER = 6


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_processes_starting_together_set_the_checkpointer_up_once(database_url: str) -> None:
    """Each worker process opens its checkpointer as it starts. Run at once on a new
    database, LangGraph's ``CREATE TABLE IF NOT EXISTS`` raced: one failed with a duplicate
    key in ``pg_type`` and its worker exited, holding the jobs it had claimed until their
    leases expired. Here, one database handle per process, opened together."""
    databases = [Database(async_database_url(database_url)) for _ in range(STARTING_TOGETHER)]
    opened: list[Memory | BaseException] = []
    try:
        opened = await asyncio.gather(*(Memory.open(db) for db in databases), return_exceptions=True)
        failures = [result for result in opened if isinstance(result, BaseException)]
        assert failures == []
        async with databases[0].engine.connect() as connection:
            tables = set(
                (
                    await connection.execute(
                        text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'checkpoint%' AND schemaname = 'public'")
                    )
                ).scalars()
            )
            versions = (await connection.execute(text("SELECT count(*), count(DISTINCT v) FROM checkpoint_migrations"))).one()
        assert {"checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"} <= tables
        assert versions[0] == versions[1] > 0  # each migration recorded once
    finally:
        for result in opened:
            if isinstance(result, Memory):
                await result.aclose()
        for db in databases:
            await db.dispose()
