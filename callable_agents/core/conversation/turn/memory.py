"""Conversation memory: the LangGraph checkpointer on the application's own database.

Thread = conversation id. Each turn prunes the thread to its latest checkpoint in the
transaction that stores its result, so a conversation's stored state is bounded by the
graph's history bound, not by its length.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import text
from sqlalchemy.orm import Session

from callable_agents.core.db import SQLITE_BUSY_TIMEOUT_MS, Database
from callable_agents.core.runtime import Runtime
from callable_agents.core.contracts.effects import EFFECT_TYPES
from callable_agents.core.conversation.turn.result import TurnResult
from callable_agents.core.conversation.turn.sqlite_saver import ThreadedSqliteSaver

SERVICE = "checkpointer"

# The latest checkpoint of each namespace stays, with its pending writes.
_SQLITE_PRUNE = (
    text(
        "DELETE FROM checkpoints WHERE thread_id = :thread_id AND checkpoint_id NOT IN ("
        " SELECT max(checkpoint_id) FROM checkpoints WHERE thread_id = :thread_id GROUP BY checkpoint_ns)"
    ),
    text(
        "DELETE FROM writes WHERE thread_id = :thread_id AND checkpoint_id NOT IN ("
        " SELECT checkpoint_id FROM checkpoints WHERE thread_id = :thread_id)"
    ),
)

# LangGraph's PostgreSQL tables (``AsyncPostgresSaver``), pruned as its ``aprune(...,
# strategy="keep_latest")`` does, in one statement: the latest checkpoint of each namespace
# stays; the others go with their pending writes and the blobs they referenced that the kept
# one does not (a checkpoint's ``channel_versions`` name its blobs, a blob being one version
# of one channel). Only blobs a deleted checkpoint named are deleted, never a blob no
# checkpoint names yet: a run writes its blobs before its checkpoint. All the parts read one
# snapshot, so what another run commits meanwhile is neither seen nor deleted. Not done here,
# unlike ``aprune``: the kept checkpoint's parent link is left pointing at the deleted parent
# (as on SQLite; nothing reads history), and the checks for features the turn graph does not
# use (a ``DeltaChannel``, pending sends of pre-v4 checkpoints, subgraph calls).
_POSTGRES_PRUNE = text(
    """
WITH latest AS (
    SELECT DISTINCT ON (checkpoint_ns) checkpoint_ns, checkpoint_id, checkpoint -> 'channel_versions' AS versions
    FROM checkpoints WHERE thread_id = :thread_id
    ORDER BY checkpoint_ns, checkpoint_id DESC
), deleted AS (
    DELETE FROM checkpoints c
    WHERE c.thread_id = :thread_id AND NOT EXISTS (
        SELECT 1 FROM latest l WHERE l.checkpoint_ns = c.checkpoint_ns AND l.checkpoint_id = c.checkpoint_id
    )
    RETURNING c.checkpoint_ns, c.checkpoint_id, c.checkpoint -> 'channel_versions' AS versions
), deleted_writes AS (
    DELETE FROM checkpoint_writes w USING deleted d
    WHERE w.thread_id = :thread_id AND w.checkpoint_ns = d.checkpoint_ns AND w.checkpoint_id = d.checkpoint_id
), freed AS (
    SELECT DISTINCT d.checkpoint_ns, v.key AS channel, v.value AS version
    FROM deleted d CROSS JOIN LATERAL jsonb_each_text(d.versions) AS v
    WHERE NOT EXISTS (
        SELECT 1 FROM latest l WHERE l.checkpoint_ns = d.checkpoint_ns AND l.versions ->> v.key = v.value
    )
), deleted_blobs AS (
    DELETE FROM checkpoint_blobs b USING freed f
    WHERE b.thread_id = :thread_id AND b.checkpoint_ns = f.checkpoint_ns
    AND b.channel = f.channel AND b.version = f.version
)
SELECT count(*) FROM deleted
"""
)


def state_serializer() -> JsonPlusSerializer:
    """The checkpoint serializer, allowed to load the state's own types (a turn's effects and
    result) besides LangGraph's safe ones, so nothing else in a checkpoint is ever imported."""
    return JsonPlusSerializer(
        allowed_msgpack_modules=[(kind.__module__, kind.__name__) for kind in (*EFFECT_TYPES, TurnResult)]
    )


# Any fixed number: the key of the advisory lock under which one process at a time creates
# or migrates LangGraph's tables.
CHECKPOINTER_SETUP_LOCK_KEY = 0x43504B54  # "CPKT"
SETUP_LOCK_RETRY_SECONDS = 0.05


async def _set_up_once(pool: AsyncConnectionPool[Any], saver: AsyncPostgresSaver) -> None:
    """``saver.setup()`` (LangGraph's own migrations: ``CREATE TABLE IF NOT EXISTS`` and its
    version rows) under a session advisory lock. Two workers starting together on a new
    database ran it at once, and PostgreSQL's ``IF NOT EXISTS`` is no guard against a
    concurrent create: one failed (a duplicate key in ``pg_type``) and its process exited.

    The lock is tried, not waited for: one migration is a ``CREATE INDEX CONCURRENTLY``,
    which waits for every statement older than it to end, and a process waiting for the
    lock inside a statement would wait for the holder's index in turn, forever."""
    async with pool.connection() as connection:
        while True:
            cursor = await connection.execute("SELECT pg_try_advisory_lock(%s) AS locked", (CHECKPOINTER_SETUP_LOCK_KEY,))
            row = await cursor.fetchone()  # the pool's rows are dicts
            if row is not None and row["locked"]:
                break
            await asyncio.sleep(SETUP_LOCK_RETRY_SECONDS)
        try:
            await saver.setup()
        finally:
            await connection.execute("SELECT pg_advisory_unlock(%s)", (CHECKPOINTER_SETUP_LOCK_KEY,))


class Memory:
    """The process's checkpointer and how to prune a thread on this backend."""

    def __init__(self, saver: BaseCheckpointSaver[Any], closer: Callable[[], Awaitable[None]], *, sqlite: bool) -> None:
        self.saver = saver
        self._closer = closer
        self._sqlite = sqlite

    @classmethod
    async def open(cls, db: Database) -> Memory:
        if db.is_sqlite:
            path = db.url.split(":///", 1)[1]

            def connect() -> sqlite3.Connection:
                connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                # WAL + NORMAL: durable across process crashes, no fsync per checkpoint write.
                connection.execute("PRAGMA synchronous=NORMAL")
                return connection

            connection = await db.call_on_thread(connect)
            saver = ThreadedSqliteSaver(connection, db.call_on_thread, serde=state_serializer())
            await db.call_on_thread(saver.setup)

            async def close() -> None:
                await db.call_on_thread(connection.close)

            return cls(saver, close, sqlite=True)
        conninfo = db.libpq_url
        pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=8,
            open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        await pool.open()
        postgres_saver = AsyncPostgresSaver(pool, serde=state_serializer())  # type: ignore[arg-type]
        try:
            await _set_up_once(pool, postgres_saver)
        except BaseException:
            await pool.close()
            raise
        return cls(postgres_saver, pool.close, sqlite=False)

    @classmethod
    async def of(cls, runtime: Runtime) -> Memory:
        found = runtime.services.memory
        if found is None:
            async with runtime.services.memory_lock:
                found = runtime.services.memory
                if found is None:
                    found = runtime.services.memory = await cls.open(runtime.db)
        return found

    def prune_in(self, session: Session, thread_id: str) -> None:
        """Keep only the thread's latest checkpoint (with its pending writes and the blobs it
        references), in ``session``'s transaction: the turn's result transaction, so the
        prune costs a statement there instead of a transaction of its own after it. The
        checkpointer's tables live in the application's database on both backends."""
        if self._sqlite:
            for statement in _SQLITE_PRUNE:
                session.execute(statement, {"thread_id": thread_id})
            return
        session.execute(_POSTGRES_PRUNE, {"thread_id": thread_id})

    async def aclose(self) -> None:
        await self._closer()
