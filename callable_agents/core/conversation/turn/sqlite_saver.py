"""A LangGraph checkpointer for SQLite that works on the database's own thread.

LangGraph's ``AsyncSqliteSaver`` goes through aiosqlite: every statement of a checkpoint
read or write is a separate hand-off to that connection's thread and back. This saver is
LangGraph's synchronous :class:`~langgraph.checkpoint.sqlite.SqliteSaver`, run whole on the
thread where the process's other SQLite work already runs (``Database.call_on_thread``):
one hand-off per checkpoint operation, and no second writer thread competing for the lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite import SqliteSaver

ResultT = TypeVar("ResultT")
OnThread = Callable[..., Awaitable[Any]]  # (function, *args) -> awaitable of its result


class ThreadedSqliteSaver(SqliteSaver):
    """``SqliteSaver`` whose async methods run its sync ones on one given thread.

    ``on_thread(function, *args)`` runs ``function(*args)`` on that thread; the connection
    must have been opened there (or with ``check_same_thread=False``).
    """

    def __init__(self, conn: sqlite3.Connection, on_thread: OnThread, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(conn, serde=serde)
        self.on_thread = on_thread

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.on_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        def listed() -> list[CheckpointTuple]:
            return list(self.list(config, filter=filter, before=before, limit=limit))

        for item in await self.on_thread(listed):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self.on_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self.on_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await self.on_thread(self.delete_thread, thread_id)

    async def aget_delta_channel_history(self, *, config: RunnableConfig, channels: Sequence[str]) -> Mapping[str, Any]:
        def history() -> Mapping[str, Any]:
            return self.get_delta_channel_history(config=config, channels=channels)

        return await self.on_thread(history)
