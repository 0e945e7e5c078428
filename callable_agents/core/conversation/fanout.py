"""Live events across processes: PostgreSQL LISTEN/NOTIFY by default, Redis pub/sub when
``CALLABLE_REDIS_URL`` is set; SQLite (one process) needs neither.

An :class:`EventRelay` sends what this process's :class:`~.streams.StreamHub` publishes to
every other process on the same database and hands what they publish to the hub, which
delivers it as if it had been published here (tokens to a visitor's stream, wake-ups to the
inbox, supersede and take-over signals to a running turn). Events are small and carry no
secret: a token, a stored message's public fields, a status, a message id. Anything whose
envelope would pass NOTIFY's 8000-byte payload limit goes as an id (``{"type": "stored"}``)
that tells streams to read the database now; the database stays the source of truth, and
every stream still polls it, so an event lost in an outage delays a message, never loses it.

Sending is one task per process draining a queue: consecutive tokens of a conversation
are merged into one notification when the sender is behind, so a busy process sends fewer,
larger messages instead of queueing behind itself. The listener reconnects by itself (0.5 s,
doubling to 5 s) after the database or Redis goes away, and on each (re)connection wakes the
inbox's watchers, since changes may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from callable_agents.core.observability.metrics import count_live_events

log = logging.getLogger(__name__)

CHANNEL = "callable_events"
MAX_PAYLOAD_BYTES = 7900  # PostgreSQL's NOTIFY refuses payloads of 8000 bytes or more
OUTBOX_SIZE = 10_000
SEND_ATTEMPTS = 3
LISTEN_CHECK_SECONDS = 10.0  # an idle listener checks its connection this often

# Delivers one event here: (conversation id or None for "something changed", event).
Deliver = Callable[[str | None, dict[str, Any]], None]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _envelope(origin: str, items: list[str]) -> str:
    """``{"o": origin, "v": [items]}`` from items already encoded (each encoded once)."""
    return '{"o":' + _json(origin) + ',"v":[' + ",".join(items) + "]}"


def _shrunk(conversation_id: str | None, event: dict[str, Any]) -> tuple[str | None, dict[str, Any]] | None:
    """An event too large for one notification, as what still fits: a stored message's id
    (streams read it from the database), or nothing (a token that large is not sent)."""
    if event.get("type") == "message" and isinstance(event.get("id"), int):
        return conversation_id, {"type": "stored", "id": event["id"]}
    if event.get("type") == "token":
        return None
    return conversation_id, {"type": str(event.get("type") or "changed")}


def pack(origin: str, events: list[tuple[str | None, dict[str, Any]]]) -> list[str]:
    """``events`` as few payloads as fit the limit, in order; consecutive tokens of one
    conversation merged."""
    merged: list[tuple[str | None, dict[str, Any]]] = []
    for conversation_id, event in events:
        if (
            merged
            and event.get("type") == "token"
            and merged[-1][0] == conversation_id
            and merged[-1][1].get("type") == "token"
            and len(merged[-1][1]["text"]) + len(event.get("text") or "") < MAX_PAYLOAD_BYTES // 8
        ):
            merged[-1] = (conversation_id, {"type": "token", "text": merged[-1][1]["text"] + str(event.get("text") or "")})
        else:
            merged.append((conversation_id, dict(event)))
    room = MAX_PAYLOAD_BYTES - len(_envelope(origin, []).encode())
    payloads: list[str] = []
    batch: list[str] = []
    used = 0
    for item in merged:
        encoded = _json(list(item))
        size = len(encoded.encode())
        if size > room:
            shrunk = _shrunk(*item)
            if shrunk is None:
                continue
            encoded = _json(list(shrunk))
            size = len(encoded.encode())
        if batch and used + 1 + size > room:
            payloads.append(_envelope(origin, batch))
            batch, used = [], 0
        used += size + (1 if batch else 0)
        batch.append(encoded)
    if batch:
        payloads.append(_envelope(origin, batch))
    return payloads


class EventRelay:
    """This process's side of the fan-out: a sender task and a listener task."""

    kind = "relay"

    def __init__(self, deliver: Deliver) -> None:
        self.origin = uuid.uuid4().hex[:16]  # this process's own events come back: skipped
        self._deliver = deliver
        self._outbox: asyncio.Queue[tuple[str | None, dict[str, Any]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()
        self._dropped = 0

    @property
    def started(self) -> bool:
        return bool(self._tasks)

    def start(self) -> None:
        """Start sending and listening (in the running event loop)."""
        if self._tasks:
            return
        self._outbox = asyncio.Queue(OUTBOX_SIZE)
        self._tasks = [
            asyncio.create_task(self._send_forever(), name=f"{self.kind}-events-sender"),
            asyncio.create_task(self._listen_forever(), name=f"{self.kind}-events-listener"),
        ]

    def send(self, conversation_id: str | None, event: dict[str, Any]) -> None:
        """Queue an event for the other processes (never blocks; a full queue drops it)."""
        if self._outbox is None:
            return
        try:
            self._outbox.put_nowait((conversation_id, event))
        except asyncio.QueueFull:
            self._dropped += 1
            count_live_events(self.kind, "dropped")
            if self._dropped % 1000 == 1:
                log.warning("live events: the %s sender is behind; %d events dropped so far", self.kind, self._dropped)

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait (up to ``timeout``) until every queued event has been sent."""
        if self._outbox is None:
            return
        try:
            await asyncio.wait_for(self._outbox.join(), timeout)
        except TimeoutError:
            pass

    async def aclose(self) -> None:
        await self.flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._close_connections()

    # -- sending ----------------------------------------------------------------------

    async def _send_forever(self) -> None:
        assert self._outbox is not None
        outbox = self._outbox
        while True:
            batch = [await outbox.get()]
            while not outbox.empty() and len(batch) < 500:
                batch.append(outbox.get_nowait())
            try:
                for payload in pack(self.origin, batch):
                    await self._send_with_retries(payload)
                count_live_events(self.kind, "sent", len(batch))
            finally:
                for _ in batch:
                    outbox.task_done()

    async def _send_with_retries(self, payload: str) -> None:
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                await self._publish(payload)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or Redis went away: reconnect next time
                await self._reset_sender()
                if attempt == SEND_ATTEMPTS:
                    log.warning("live events: %s send failed (%s); streams will read it from the database", self.kind, type(exc).__name__)
                    return
                await asyncio.sleep(0.5 * attempt)

    # -- listening --------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        backoff = 0.5
        while True:
            try:
                async for payload in self._subscribe():
                    backoff = 0.5
                    self.receive(payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live events: the %s listener lost its connection (%s); reconnecting", self.kind, type(exc).__name__)
            finally:
                self.listening.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def connected(self) -> None:
        """Called by a subscription once it listens: watchers re-read what they may have missed."""
        self.listening.set()
        self._deliver(None, {"type": "changed"})

    def receive(self, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            return
        if not isinstance(data, dict) or data.get("o") == self.origin:
            return
        items = [item for item in data.get("v") or [] if isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict)]
        count_live_events(self.kind, "received", len(items))
        for conversation_id, event in items:
            self._deliver(conversation_id if isinstance(conversation_id, str) else None, event)

    # -- what a transport provides ----------------------------------------------------

    async def _publish(self, payload: str) -> None:
        raise NotImplementedError

    async def _reset_sender(self) -> None:
        raise NotImplementedError

    def _subscribe(self) -> AsyncIterator[str]:
        raise NotImplementedError

    async def _close_connections(self) -> None:
        raise NotImplementedError


class PostgresRelay(EventRelay):
    """``NOTIFY callable_events`` on one connection, ``LISTEN`` on another (psycopg)."""

    kind = "postgresql"

    def __init__(self, libpq_url: str, deliver: Deliver) -> None:
        super().__init__(deliver)
        self.url = libpq_url
        self._sender: Any = None

    async def _connect(self) -> Any:
        import psycopg

        # Keepalives: a partitioned network ends the listener's connection in seconds.
        return await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, connect_timeout=5,
            keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
        )

    async def _publish(self, payload: str) -> None:
        if self._sender is None or self._sender.closed:
            self._sender = await self._connect()
        await self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    async def _reset_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            try:
                await sender.close()
            except Exception:
                pass

    async def _subscribe(self) -> AsyncIterator[str]:
        connection = await self._connect()
        try:
            await connection.execute(f"LISTEN {CHANNEL}")
            self.connected()
            while True:
                async for notify in connection.notifies(timeout=LISTEN_CHECK_SECONDS):
                    yield notify.payload
                await connection.execute("SELECT 1")  # quiet for a while: still connected?
        finally:
            try:
                await connection.close()
            except Exception:
                pass

    async def _close_connections(self) -> None:
        await self._reset_sender()


def redis_channel(database_url: str) -> str:
    """The Redis channel of one database's processes (several deployments may share a Redis)."""
    return "callable:events:" + hashlib.sha256(database_url.encode()).hexdigest()[:16]


class RedisRelay(EventRelay):
    """``PUBLISH``/``SUBSCRIBE`` on a channel named after the database (redis.asyncio)."""

    kind = "redis"

    def __init__(self, redis_url: str, channel: str, deliver: Deliver) -> None:
        super().__init__(deliver)
        self.url = redis_url
        self.channel = channel
        self._client: Any = None

    def _new_client(self) -> Any:
        import redis.asyncio as redis

        return redis.from_url(
            self.url, socket_connect_timeout=5, socket_keepalive=True, health_check_interval=LISTEN_CHECK_SECONDS,
            client_name=f"callable-events-{self.origin}",  # CLIENT LIST shows whose connection it is
        )

    async def _publish(self, payload: str) -> None:
        if self._client is None:
            self._client = self._new_client()
        await self._client.publish(self.channel, payload)

    async def _reset_sender(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                pass

    async def _subscribe(self) -> AsyncIterator[str]:
        client = self._new_client()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self.connected()
            while True:
                message = await pubsub.get_message(timeout=LISTEN_CHECK_SECONDS)
                if message is None:
                    await pubsub.ping()  # quiet for a while: still connected?
                    continue
                data = message.get("data")
                if isinstance(data, bytes):
                    yield data.decode("utf-8", "replace")
        finally:
            try:
                await pubsub.aclose()
                await client.aclose()
            except Exception:
                pass

    async def _close_connections(self) -> None:
        await self._reset_sender()
