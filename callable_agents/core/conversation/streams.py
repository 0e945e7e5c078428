"""In-process live events per conversation: streamed tokens, stored messages, status changes.

The worker publishes; live views (a web chat's server-sent events, the inbox) subscribe.
It is a fast path only: a subscriber in another process than the worker sees nothing here
and falls back to reading stored messages, which are the source of truth.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from callable_agents.core.runtime import Runtime

QUEUE_SIZE = 1024


class StreamHub:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    @classmethod
    def of(cls, runtime: Runtime) -> StreamHub:
        hub = runtime.services.stream_hub
        if hub is None:
            hub = runtime.services.stream_hub = cls()
        return hub

    def publish(self, conversation_id: str, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers.get(conversation_id, ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a stalled reader loses live tokens, not messages
                pass

    def has_subscribers(self, conversation_id: str) -> bool:
        return bool(self._subscribers.get(conversation_id))

    @asynccontextmanager
    async def subscribe(self, conversation_id: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers[conversation_id].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[conversation_id].discard(queue)
            if not self._subscribers[conversation_id]:
                del self._subscribers[conversation_id]
