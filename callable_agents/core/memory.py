"""Conversation memory: the LangGraph checkpointer on the application's own database.

Thread = conversation id. After each turn the thread is pruned to its latest checkpoint, so
a conversation's stored state is bounded by the graph's history bound, not by its length.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import text
from sqlalchemy.orm import Session

from callable_agents.core.db import SQLITE_BUSY_TIMEOUT_MS
from callable_agents.core.runtime import Runtime

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


class Memory:
    """The process's checkpointer and how to prune a thread on this backend."""

    def __init__(self, saver: BaseCheckpointSaver[Any], closer: Any, sqlite: aiosqlite.Connection | None) -> None:
        self.saver = saver
        self._closer = closer
        self._sqlite = sqlite
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, database_url: str) -> Memory:
        if database_url.startswith("sqlite"):
            path = database_url.split(":///", 1)[1]
            connection = await aiosqlite.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            # WAL + NORMAL: durable across process crashes, no fsync per checkpoint write.
            await connection.execute("PRAGMA synchronous=NORMAL")
            saver: BaseCheckpointSaver[Any] = AsyncSqliteSaver(connection)
            await saver.setup()  # type: ignore[attr-defined]
            return cls(saver, connection.close, connection)
        conninfo = "postgresql://" + database_url.split("://", 1)[1]
        pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=8,
            open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        await pool.open()
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        return cls(saver, pool.close, None)

    @classmethod
    async def of(cls, runtime: Runtime) -> Memory:
        found = runtime.services.get(SERVICE)
        if found is None:
            lock = runtime.services.setdefault("_memory_lock", asyncio.Lock())
            async with lock:
                found = runtime.services.get(SERVICE)
                if found is None:
                    found = runtime.services[SERVICE] = await cls.open(runtime.db.url)
        return found  # type: ignore[no-any-return]

    @property
    def prunes_in_transaction(self) -> bool:
        """SQLite: the checkpoints live in the application's database file, so a turn prunes
        them in its own result transaction (:meth:`prune_in`) instead of after it."""
        return self._sqlite is not None

    def prune_in(self, session: Session, thread_id: str) -> None:
        """Keep only the thread's latest checkpoint, in ``session``'s transaction (SQLite only;
        elsewhere this does nothing and :meth:`prune` is the way)."""
        if self._sqlite is None:
            return
        for statement in _SQLITE_PRUNE:
            session.execute(statement, {"thread_id": thread_id})

    async def prune(self, thread_id: str) -> None:
        """Keep only the latest checkpoint of the thread (and its pending writes)."""
        if self._sqlite is None:
            await self.saver.aprune([thread_id], strategy="keep_latest")  # type: ignore[attr-defined]
            return
        async with self._lock:
            for statement in _SQLITE_PRUNE:
                await self._sqlite.execute(str(statement), {"thread_id": thread_id})
            await self._sqlite.commit()

    async def forget(self, thread_id: str) -> None:
        await self.saver.adelete_thread(thread_id)

    async def aclose(self) -> None:
        await self._closer()
