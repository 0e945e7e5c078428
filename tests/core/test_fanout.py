"""Live events across processes: two runtimes on one PostgreSQL database (each with its own
relay, as two processes have) see each other's events through LISTEN/NOTIFY, or through
Redis pub/sub when ``redis_url`` is set; the listener comes back by itself when its
connection is killed; payloads stay under NOTIFY's limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis.asyncio as redis
from sqlalchemy import func, select

from callable_agents.core.conversation.fanout import MAX_PAYLOAD_BYTES, EventRelay, pack
from callable_agents.core.conversation.inbound import InboundMessage, queue_inbound
from callable_agents.core.conversation.jobs import register_conversation_jobs
from callable_agents.core.conversation.streams import StreamHub, wake_workers
from callable_agents.core.jobs import Worker, wake_worker
from callable_agents.core.models import Message
from callable_agents.core.conversation.turn.superseding import RunningTurns
from callable_agents.core.runtime import Runtime
from tests.core.pipeline_helpers import make_agent_channel
from tests.core.two_processes import REDIS_URL, transport_settings
from tests.core.two_processes import two_runtimes as two_processes


# --------------------------------------------------------------------------- payloads


def test_consecutive_tokens_of_a_conversation_go_as_one_payload() -> None:
    events: list[tuple[str | None, dict[str, Any]]] = [
        ("c1", {"type": "token", "text": "Hel"}),
        ("c1", {"type": "token", "text": "lo"}),
        ("c2", {"type": "token", "text": "x"}),
        ("c1", {"type": "status", "status": "human"}),
    ]
    [payload] = pack("me", events)
    assert json.loads(payload) == {
        "o": "me",
        "v": [["c1", {"type": "token", "text": "Hello"}], ["c2", {"type": "token", "text": "x"}], ["c1", {"type": "status", "status": "human"}]],
    }


def test_a_message_too_large_to_notify_goes_as_its_id_and_every_payload_fits() -> None:
    huge = {"type": "message", "id": 42, "author": "agent", "text": "é" * 9000, "media": [], "meta": {}}
    many = [("c1", {"type": "message", "id": n, "author": "agent", "text": "x" * 900, "media": [], "meta": {}}) for n in range(20)]
    payloads = pack("me", [("c1", huge), *many])
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES for p in payloads)
    items = [item for p in payloads for item in json.loads(p)["v"]]
    assert items[0] == ["c1", {"type": "stored", "id": 42}]
    assert [item[1]["id"] for item in items[1:]] == list(range(20))  # all of them, in order
    assert len(payloads) > 1


def test_a_relay_skips_its_own_events_and_garbage() -> None:
    got: list[tuple[str | None, dict[str, Any]]] = []
    relay = EventRelay(lambda c, e: got.append((c, e)))
    [own] = pack(relay.origin, [("c1", {"type": "typing"})])
    [other] = pack("another-process", [("c1", {"type": "typing"}), (None, {"type": "changed"})])
    for payload in (own, "not json", "[1]", other):
        relay.receive(payload)
    assert got == [("c1", {"type": "typing"}), (None, {"type": "changed"})]


# --------------------------------------------------------------------------- two processes


@pytest.fixture(params=["postgresql", "redis"])
async def two_runtimes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Runtime, Runtime]]:
    url = request.getfixturevalue("fresh_postgres_url")
    async with two_processes(tmp_path, url, **transport_settings(request.param)) as (a, b):
        for runtime in (a, b):
            relay = StreamHub.of(runtime).relay
            assert relay is not None and relay.kind == request.param
            await asyncio.wait_for(relay.listening.wait(), 10)
        yield a, b


async def _next(queue: asyncio.Queue[dict[str, Any]], timeout: float = 5.0) -> dict[str, Any]:
    return await asyncio.wait_for(queue.get(), timeout)


async def test_events_published_in_one_process_reach_the_other_once(two_runtimes: tuple[Runtime, Runtime]) -> None:
    a, b = two_runtimes
    hub_a, hub_b = StreamHub.of(a), StreamHub.of(b)
    async with hub_a.subscribe("c1") as remote, hub_b.subscribe("c1") as local, hub_a.subscribe("c2") as other:
        async with hub_a.watch() as wake:
            await asyncio.sleep(0.2)
            wake.clear()
            hub_b.publish("c1", {"type": "token", "text": "Hi"})
            hub_b.publish("c1", {"type": "message", "id": 7, "author": "agent", "text": "Hi there", "media": [], "meta": {}})
            assert await _next(local) == {"type": "token", "text": "Hi"}
            assert (await _next(remote))["text"] == "Hi"
            assert (await _next(remote))["id"] == 7
            await asyncio.wait_for(wake.wait(), 5)  # a stored message wakes the other process's inbox
            await asyncio.sleep(0.3)
            assert (await _next(local))["id"] == 7 and local.empty()  # its own events: once, not echoed back
            assert remote.empty() and other.empty()
            wake.clear()
            hub_b.changed()
            await asyncio.wait_for(wake.wait(), 5)


async def test_work_queued_in_one_process_wakes_an_idle_worker_in_the_other(two_runtimes: tuple[Runtime, Runtime]) -> None:
    """B's worker polls every 30 s: only A's wake-up can make it file A's webhook message at once."""
    web, worker_process = two_runtimes
    register_conversation_jobs(worker_process)
    StreamHub.of(worker_process).on_work(lambda: wake_worker(worker_process))
    worker = worker_process.services.worker = Worker(worker_process, poll_seconds=30)
    running = asyncio.create_task(worker.run())
    try:
        _agent, channel = await make_agent_channel(web)
        await asyncio.sleep(0.3)  # B's first pass is over: it waits out its poll now
        await queue_inbound(web, channel, InboundMessage(external_user_id="whatsapp:+15550001", text="open today?", provider_message_id="SM1"))
        async with asyncio.timeout(10):
            while not await _filed(worker_process):
                await asyncio.sleep(0.05)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def _filed(runtime: Runtime) -> bool:
    async with runtime.db.sessions() as session:
        return bool(await session.scalar(select(func.count()).select_from(Message)))


async def test_a_burst_of_queued_work_sends_a_few_wake_ups_not_one_each(two_runtimes: tuple[Runtime, Runtime]) -> None:
    a, b = two_runtimes
    woken: list[float] = []
    StreamHub.of(b).on_work(lambda: woken.append(asyncio.get_running_loop().time()))
    for _ in range(200):
        wake_workers(a)
        await asyncio.sleep(0)
    await asyncio.sleep(0.5)
    assert 1 <= len(woken) <= 3, woken  # the first at once, then one after the interval covering the rest
    wake_workers(a)  # later work is told again
    async with asyncio.timeout(5):
        while len(woken) < 2 or woken[-1] - woken[0] < 0.4:
            await asyncio.sleep(0.02)


async def test_a_newer_message_or_a_take_over_stops_a_turn_in_the_other_process(two_runtimes: tuple[Runtime, Runtime]) -> None:
    a, b = two_runtimes
    turns = RunningTurns.of(a)
    with turns.watch("c1", answering_up_to=10) as stopped:
        RunningTurns.announce(b, "c1", 9)  # older than what the turn answers
        RunningTurns.announce(b, "c2", 99)  # another conversation
        await asyncio.sleep(0.5)
        assert not stopped.is_set()
        RunningTurns.announce(b, "c1", 11)
        await asyncio.wait_for(stopped.wait(), 5)
        assert turns.reason("c1", stopped) == "superseded"
    with turns.watch("c1", answering_up_to=20) as stopped:
        turns.settle("c1", stopped)  # a visitor saw its tokens: newer messages no longer stop it ...
        RunningTurns.announce(b, "c1", 21)
        await asyncio.sleep(0.5)
        assert not stopped.is_set()
        StreamHub.of(b).publish("c1", {"type": "status", "status": "human"})  # ... a take-over does
        await asyncio.wait_for(stopped.wait(), 5)
        assert turns.reason("c1", stopped) == "taken_over"


async def _kill_listener(runtime: Runtime, relay: EventRelay) -> None:
    if relay.kind == "postgresql":
        async with await psycopg.AsyncConnection.connect(runtime.db.libpq_url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %%' AND pid <> pg_backend_pid()"
            )
    else:
        client = redis.from_url(REDIS_URL)
        try:
            for entry in await client.client_list(_type="pubsub"):
                if entry.get("name") == f"callable-events-{relay.origin}":
                    await client.client_kill_filter(_id=entry["id"])
        finally:
            await client.aclose()


async def test_a_listener_whose_connection_is_killed_comes_back_by_itself(two_runtimes: tuple[Runtime, Runtime]) -> None:
    a, b = two_runtimes
    relay = StreamHub.of(a).relay
    assert relay is not None
    await _kill_listener(a, relay)
    for _ in range(100):
        if not relay.listening.is_set():
            break
        await asyncio.sleep(0.05)
    assert not relay.listening.is_set(), "the killed connection went unnoticed"
    await asyncio.wait_for(relay.listening.wait(), 15)
    async with StreamHub.of(a).subscribe("c1") as queue:
        StreamHub.of(b).publish("c1", {"type": "typing"})
        assert await _next(queue) == {"type": "typing"}


async def test_sqlite_keeps_the_in_process_hub(sqlite_runtime: Runtime) -> None:
    hub = StreamHub.of(sqlite_runtime)
    assert hub.relay is None and not hub.has_subscribers("c1")
    async with hub.subscribe("c1") as queue:
        assert hub.has_subscribers("c1")
        hub.publish("c1", {"type": "typing"})
        assert queue.get_nowait() == {"type": "typing"}
