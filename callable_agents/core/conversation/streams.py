"""In-process live events per conversation: streamed tokens, stored messages, status changes.

The worker publishes; live views (a web chat's server-sent events, the inbox) subscribe.
It is a fast path only: a subscriber in another process than the worker sees nothing here
and falls back to reading stored messages, which are the source of truth.

Watchers (:meth:`StreamHub.watch`, the inbox) are woken by every event but streamed tokens,
in any conversation, and by :meth:`StreamHub.changed` (a write with no event of its own,
e.g. the worker filing customer messages): they read what changed from the database, scoped
to their workspace, so a wake-up carries no data and leaks nothing.
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
        self._watchers: set[asyncio.Event] = set()

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
        if event.get("type") != "token":
            self.changed()

    def changed(self) -> None:
        """Wake every watcher: something was stored that they may want to read."""
        for wake in self._watchers:
            wake.set()

    @asynccontextmanager
    async def watch(self) -> AsyncIterator[asyncio.Event]:
        """An event set on every change (clear it before reading what changed)."""
        wake = asyncio.Event()
        self._watchers.add(wake)
        try:
            yield wake
        finally:
            self._watchers.discard(wake)

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
