"""Conversation memory: the LangGraph checkpointer on the application's own database.

Thread = conversation id. After each turn the thread is pruned to its latest checkpoint, so
a conversation's stored state is bounded by the graph's history bound, not by its length.
"""

from __future__ import annotations

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


def state_serializer() -> JsonPlusSerializer:
    """The checkpoint serializer, allowed to load the state's own types (a turn's effects and
    result) besides LangGraph's safe ones, so nothing else in a checkpoint is ever imported."""
    return JsonPlusSerializer(
        allowed_msgpack_modules=[(kind.__module__, kind.__name__) for kind in (*EFFECT_TYPES, TurnResult)]
    )


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
        await postgres_saver.setup()
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

    @property
    def prunes_in_transaction(self) -> bool:
        """SQLite: the checkpoints live in the application's database file, so a turn prunes
        them in its own result transaction (:meth:`prune_in`) instead of after it."""
        return self._sqlite

    def prune_in(self, session: Session, thread_id: str) -> None:
        """Keep only the thread's latest checkpoint, in ``session``'s transaction (SQLite only;
        elsewhere this does nothing and :meth:`prune` is the way)."""
        if not self._sqlite:
            return
        for statement in _SQLITE_PRUNE:
            session.execute(statement, {"thread_id": thread_id})

    async def prune(self, thread_id: str) -> None:
        """Keep only the latest checkpoint of the thread (and its pending writes), after a
        turn, on backends whose turns can't prune in their own transaction (PostgreSQL)."""
        if self._sqlite:
            raise RuntimeError("on SQLite a turn prunes in its own transaction: use prune_in(session, thread_id)")
        await self.saver.aprune([thread_id], strategy="keep_latest")

    async def forget(self, thread_id: str) -> None:
        await self.saver.adelete_thread(thread_id)

    async def aclose(self) -> None:
        await self._closer()
