"""Live events per conversation: streamed tokens, stored messages, status changes, and the
signals that stop a running turn (a newer message supersedes it, a person takes over).

The worker publishes; live views (a web chat's server-sent events, the inbox) subscribe, and
:class:`~.turn.superseding.RunningTurns` listens. On PostgreSQL every event also goes to the
other processes on the database through an :class:`~.fanout.EventRelay` (LISTEN/NOTIFY, or
Redis pub/sub with ``CALLABLE_REDIS_URL``), whose hubs deliver it as their own; on SQLite (one
process) the hub is in-process only. It is a fast path: stored messages are the source of
truth, and every live view also reads them, so an event lost in an outage delays, never loses.

Watchers (:meth:`StreamHub.watch`, the inbox) are woken by every event but streamed tokens,
in any conversation, and by :meth:`StreamHub.changed` (a write with no event of its own,
e.g. the worker filing customer messages): they read what changed from the database, scoped
to their workspace, so a wake-up carries no data and leaks nothing.

Workers are told the same way that work was queued in another process (:func:`wake_workers`:
a web process that appended a webhook's message, stored a visitor's, queued a person's
reply): an idle worker in another process looks for it at once instead of at its next poll.
At most one such wake-up leaves a process every :data:`WORK_WAKE_SECONDS`, sent after the
latest work it covers, so a webhook burst costs a few notifications, not one each.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from callable_agents.core.conversation.fanout import EventRelay, PostgresRelay, RedisRelay, redis_channel
from callable_agents.core.jobs import wake_worker
from callable_agents.core.runtime import Runtime

QUEUE_SIZE = 1024
# The most often a process tells the others' workers that work was queued (seconds).
WORK_WAKE_SECONDS = 0.01
# Events that don't wake the inbox's watchers: nothing new is stored by them.
_QUIET = frozenset({"token", "supersede"})

# A listener sees every event, local or from another process: (conversation id, event).
Listener = Callable[[str, dict[str, Any]], None]


def relay_for(runtime: Runtime, deliver: Callable[[str | None, dict[str, Any]], None]) -> EventRelay | None:
    """The fan-out this process's settings choose: Redis when ``redis_url`` is set, else
    LISTEN/NOTIFY on PostgreSQL; none on SQLite (one process)."""
    settings = runtime.settings
    if settings.redis_url is not None:
        return RedisRelay(settings.redis_url.get_secret_value(), redis_channel(runtime.db.url), deliver)
    if not runtime.db.is_sqlite:
        return PostgresRelay(runtime.db.libpq_url, deliver)
    return None


class StreamHub:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._watchers: set[asyncio.Event] = set()
        self._listeners: list[Listener] = []
        self._work_listeners: list[Callable[[], None]] = []
        self._work_wake: asyncio.TimerHandle | None = None
        self._last_work_wake = float("-inf")
        self.relay: EventRelay | None = None

    @classmethod
    def of(cls, runtime: Runtime) -> StreamHub:
        """The process's hub; its relay to the other processes starts with it (in a running loop)."""
        hub = runtime.services.stream_hub
        if hub is None:
            hub = runtime.services.stream_hub = cls()
            hub.relay = relay_for(runtime, hub.deliver)
        if hub.relay is not None and not hub.relay.started:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return hub  # started by the first call inside the event loop
            hub.relay.start()
        return hub

    def publish(self, conversation_id: str, event: dict[str, Any]) -> None:
        """Deliver ``event`` here and send it to the other processes."""
        self.deliver(conversation_id, event)
        if self.relay is not None:
            self.relay.send(conversation_id, event)

    def deliver(self, conversation_id: str | None, event: dict[str, Any]) -> None:
        """Hand an event to this process's subscribers, listeners and watchers (``None``: a
        bare "something changed")."""
        if conversation_id is None:
            if event.get("type") == "work":
                for work_listener in self._work_listeners:
                    work_listener()
            else:
                self._wake()
            return
        for queue in list(self._subscribers.get(conversation_id, ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a stalled reader loses live tokens, not messages
                pass
        for listener in self._listeners:
            listener(conversation_id, event)
        if event.get("type") not in _QUIET:
            self._wake()

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` with every event of every conversation, from any process."""
        self._listeners.append(listener)

    def changed(self) -> None:
        """Wake every watcher, in every process: something was stored that they may want to read."""
        self._wake()
        if self.relay is not None:
            self.relay.send(None, {"type": "changed"})

    def on_work(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when another process says work was queued (:meth:`work_queued`)."""
        self._work_listeners.append(listener)

    def work_queued(self) -> None:
        """Tell the other processes' workers that work was queued here: at once if none was
        told for :data:`WORK_WAKE_SECONDS`, else once that interval is over (a call while one
        is pending is covered by it, since it leaves after)."""
        if self.relay is None or self._work_wake is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_work_wake + WORK_WAKE_SECONDS - loop.time())
        self._work_wake = loop.call_later(delay, self._send_work_wake)

    def _send_work_wake(self) -> None:
        self._work_wake = None
        self._last_work_wake = asyncio.get_running_loop().time()
        if self.relay is not None:
            self.relay.send(None, {"type": "work"})

    def _wake(self) -> None:
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
        """Whether someone may be watching the conversation: a subscriber here, or (with a
        relay) possibly one in another process."""
        return self.relay is not None or bool(self._subscribers.get(conversation_id))

    async def aclose(self) -> None:
        if self._work_wake is not None:  # the work is in the database: a worker's poll finds it
            self._work_wake.cancel()
            self._work_wake = None
        if self.relay is not None:
            await self.relay.aclose()

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


def wake_workers(runtime: Runtime) -> None:
    """Work was queued here (a job, an inbound message): wake this process's worker, if it
    has one, and the other processes' (:meth:`StreamHub.work_queued`)."""
    wake_worker(runtime)
    StreamHub.of(runtime).work_queued()
