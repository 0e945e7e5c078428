"""A channel's reply policy: several customer messages in a row, answered at once, together,
or one by one (``core/store/reply_policy.py``, ``turn/superseding.py``).

The agent's model is the fake OpenAI server, through the real client, answering
``ack: <this turn's customer messages>`` after a set latency; the worker runs beside the
test, which sends the messages with real pauses between them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, update

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.config import Settings
from callable_agents.core.jobs import start_worker
from callable_agents.core.models import Channel, Message, Trace
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.agent_spec import SpecError
from callable_agents.core.store.channels import (
    create_or_update_channel,
    describe_channel,
    update_channel,
    validate_channel_spec,
)
from callable_agents.core.store.reply_policy import ReplyPolicy, reply_policy_of
from callable_agents.testing.openai_server import FakeOpenAI, ScriptedReply
from tests.core.pipeline_helpers import ack, connect_fake_openai, make_agent_channel, outbound, say


class Model:
    """The fake model's latency, settable per test."""

    def __init__(self) -> None:
        self.latency = 0.0

    def __call__(self, request_json: dict[str, Any]) -> ScriptedReply:
        return ScriptedReply(text=ack(request_json), delay=self.latency)


@dataclass
class Setup:
    runtime: Runtime
    fake: FakeOpenAI
    model: Model
    channel: Channel


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeOpenAI, Model]]:
    model = Model()
    with FakeOpenAI(responder=model) as server:
        yield server, model


async def _setup(settings: Settings, fake: tuple[FakeOpenAI, Model]) -> AsyncIterator[Setup]:
    runtime = await open_runtime(settings, migrate=True)
    worker = start_worker(runtime)
    try:
        server, model = fake
        _agent, channel = await make_agent_channel(
            runtime, model_settings={"integration": "openai", "model": "gpt-test", "max_retries": 0, "timeout": 10}
        )
        await connect_fake_openai(runtime, channel.workspace_id, server.base_url)
        yield Setup(runtime, server, model, channel)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await close_runtime(runtime)


@pytest.fixture
async def setup(tmp_path: Any, fake: tuple[FakeOpenAI, Model]) -> AsyncIterator[Setup]:
    from tests.conftest import make_settings

    async for value in _setup(make_settings(tmp_path / "data"), fake):
        yield value


async def set_policy(setup: Setup, **policy: Any) -> None:
    async with setup.runtime.db.session() as session:
        await session.execute(update(Channel).where(Channel.id == setup.channel.id).values(replies=policy))


async def burst(setup: Setup, texts: list[str], gap: float) -> str:
    """Send ``texts`` ``gap`` seconds apart; the conversation's id."""
    conversation_id = ""
    for index, text in enumerate(texts):
        if index:
            await asyncio.sleep(gap)
        conversation_id = (await say(setup.runtime, setup.channel, text)).conversation_id
    return conversation_id


async def replies(runtime: Runtime, conversation_id: str, count: int, timeout: float = 15) -> list[str]:
    """The conversation's replies once there are ``count``, and no more a moment later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m.text or "" for m in await outbound(runtime, conversation_id)]
        if len(found) >= count:
            await asyncio.sleep(0.5)  # a late duplicate would show here
            return [m.text or "" for m in await outbound(runtime, conversation_id)]
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{count} replies: got {found}")


async def turn_traces(runtime: Runtime, conversation_id: str) -> list[dict[str, Any]]:
    async with runtime.db.session() as session:
        rows = await session.scalars(select(Trace.data).where(Trace.conversation_id == conversation_id).order_by(Trace.id))
        return list(rows.all())


async def answered_by(runtime: Runtime, conversation_id: str) -> list[int | None]:
    async with runtime.db.session() as session:
        rows = await session.scalars(
            select(Message.turn_id).where(Message.conversation_id == conversation_id, Message.author == "customer").order_by(Message.id)
        )
        return list(rows.all())


# --------------------------------------------------------------------------- the setting


async def test_the_policy_is_checked_for_every_kind_and_shown(setup: Setup) -> None:
    plugins = setup.runtime.plugins
    spec = {"name": "site", "kind": "terminal", "agent": "assistant"}
    written = validate_channel_spec({**spec, "replies": {"strategy": "wait", "window_seconds": 1.5}}, plugins)
    assert written.replies == ReplyPolicy(strategy="wait", window_seconds=1.5) and written.config == {}
    assert validate_channel_spec(spec, plugins).replies is None
    assert reply_policy_of(None) == reply_policy_of({}) == ReplyPolicy(strategy="interrupt")
    assert reply_policy_of({"strategy": "queue"}) == ReplyPolicy(strategy="queue")
    for bad, field, says in (
        ({"strategy": "later"}, "replies.strategy", "interrupt"),
        ({"window_seconds": -1}, "replies.window_seconds", "0"),
        ({"window_seconds": 61}, "replies.window_seconds", "60"),
        ({"strategy": "wait", "windw": 2}, "replies.windw", ""),
        ("wait", "replies", ""),
    ):
        with pytest.raises(SpecError) as raised:
            validate_channel_spec({**spec, "replies": bad}, plugins)
        problems = {".".join(map(str, p.loc)): p.message for p in raised.value.problems}
        assert field in problems, problems
        assert says in problems[field]
    shown = describe_channel(Channel(name="site", kind="terminal", config={}, replies={"strategy": "queue"}))
    assert shown["replies"] == {"strategy": "queue"}
    assert describe_channel(Channel(name="site", kind="terminal", config={}))["replies"] == {"strategy": "interrupt"}
    async with setup.runtime.db.session() as session:  # written and rewritten through the store
        row, changed = await create_or_update_channel(
            session, setup.runtime, setup.channel.workspace_id, name="site", kind="terminal", agent="assistant",
            replies={"strategy": "wait", "window_seconds": 3},
        )
        assert changed and row.replies == {"strategy": "wait", "window_seconds": 3.0}
        row, changed = await create_or_update_channel(
            session, setup.runtime, setup.channel.workspace_id, name="site", kind="terminal", agent="assistant",
            replies=ReplyPolicy(strategy="wait", window_seconds=3),
        )
        assert not changed
        row, changed = await update_channel(session, setup.runtime, setup.channel.workspace_id, "site", {"enabled": False})
        assert changed and row.replies == {"strategy": "wait", "window_seconds": 3.0}  # kept by a partial update
        row, changed = await create_or_update_channel(
            session, setup.runtime, setup.channel.workspace_id, name="site", kind="terminal", agent="assistant"
        )
        assert changed and row.replies is None and reply_policy_of(row.replies).strategy == "interrupt"


# --------------------------------------------------------------------------- interrupt (the default)


async def test_a_slow_model_answers_a_burst_once_addressing_every_message(setup: Setup) -> None:
    setup.model.latency = 1.0
    started = time.monotonic()
    conversation_id = await burst(setup, ["Hi", "do you have croissants", "and gluten-free bread?"], gap=0.3)
    [reply] = await replies(setup.runtime, conversation_id, 1)
    assert reply == "ack: Hi | do you have croissants | and gluten-free bread?"
    assert time.monotonic() - started < 4.0  # the last message's turn, not three in a row
    traces = await turn_traces(setup.runtime, conversation_id)
    assert [t["outcome"] for t in traces] == ["superseded", "superseded", "answered"]
    assert len(set(await answered_by(setup.runtime, conversation_id))) == 1  # one turn answered all three
    # A superseded turn that reached the model had its call cancelled (a cold first turn may
    # be superseded before it gets there); the last call asked about all three.
    assert 1 < len(setup.fake.chat_requests) <= 3


async def test_a_quick_model_answers_each_message_on_its_own_in_order(setup: Setup) -> None:
    # Warm: a process's first turn loads the model client, which can take longer than a pause.
    warm_up = await say(setup.runtime, setup.channel, "warm-up", user="someone-else")
    await replies(setup.runtime, warm_up.conversation_id, 1)
    conversation_id = await burst(setup, ["Hi", "do you have croissants", "and gluten-free bread?"], gap=0.3)
    assert await replies(setup.runtime, conversation_id, 3) == [
        "ack: Hi", "ack: do you have croissants", "ack: and gluten-free bread?",
    ]
    assert [t["outcome"] for t in await turn_traces(setup.runtime, conversation_id)] == ["answered"] * 3


async def test_a_message_filed_by_another_process_makes_the_turn_refuse_to_commit(
    settings: Settings, fake: tuple[FakeOpenAI, Model]
) -> None:
    """The second message is stored by another runtime (another process's writer). On SQLite
    no signal reaches the running turn, so its model call finishes and its result transaction
    refuses; on PostgreSQL the signal crosses (LISTEN/NOTIFY) and cancels the model call.
    Either way the next turn answers both, without the withdrawn reply in its history."""
    async for setup in _setup(settings, fake):
        other = await open_runtime(settings)
        try:
            setup.model.latency = 1.0
            first = await say(setup.runtime, setup.channel, "Hi")
            deadline = time.monotonic() + 5
            while not setup.fake.chat_requests and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            setup.model.latency = 0.0
            await say(other, setup.channel, "do you open on Sunday?")
            [reply] = await replies(setup.runtime, first.conversation_id, 1)
            assert reply == "ack: Hi | do you open on Sunday?"
            traces = await turn_traces(setup.runtime, first.conversation_id)
            assert [t["outcome"] for t in traces] == ["superseded", "answered"]
            last_request = setup.fake.chat_requests[-1]
            assert not any(m.get("role") == "assistant" for m in last_request.messages)
            assert len(setup.fake.chat_requests) == 2
        finally:
            await close_runtime(other)


async def test_a_take_over_by_another_process_stops_a_turn_under_any_policy(
    settings: Settings, fake: tuple[FakeOpenAI, Model]
) -> None:
    """A person takes the conversation over through another runtime while the turn (``queue``
    policy: no newer message would withdraw it) waits on its model. On PostgreSQL the status
    event cancels the model call; on SQLite (no signal between processes) the result
    transaction sees the conversation is a person's and stores nothing. No agent reply."""
    from callable_agents.core.conversation.people import Person, take_over

    async for setup in _setup(settings, fake):
        other = await open_runtime(settings)
        try:
            await set_policy(setup, strategy="queue")
            setup.model.latency = 2.0
            first = await say(setup.runtime, setup.channel, "Can I talk to someone?")
            deadline = time.monotonic() + 5
            while not setup.fake.chat_requests and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert await take_over(other, setup.channel.workspace_id, first.conversation_id, Person(None, "Dana"))
            taken_at = time.monotonic()
            traces: list[dict[str, Any]] = []
            while not traces and time.monotonic() < taken_at + 10:
                traces = await turn_traces(setup.runtime, first.conversation_id)
                await asyncio.sleep(0.02)
            assert [t["outcome"] for t in traces] == ["taken_over"]
            if not settings.resolved_database_url.startswith("sqlite"):
                assert time.monotonic() - taken_at < 1.5  # cancelled, not waited out
            await asyncio.sleep(0.3)
            assert [m.author for m in await outbound(setup.runtime, first.conversation_id) if m.author == "agent"] == []
            assert await answered_by(setup.runtime, first.conversation_id) == [None]  # the person answers it
        finally:
            await close_runtime(other)


# --------------------------------------------------------------------------- wait and queue


async def test_wait_answers_a_burst_once_after_the_quiet_window(setup: Setup) -> None:
    await set_policy(setup, strategy="wait", window_seconds=0.6)
    conversation_id = await burst(setup, ["Hi", "do you deliver?", "to Riverton?"], gap=0.1)
    last_sent = time.monotonic()
    [reply] = await replies(setup.runtime, conversation_id, 1)
    assert reply == "ack: Hi | do you deliver? | to Riverton?"
    assert len(setup.fake.chat_requests) == 1
    async with setup.runtime.db.session() as session:
        answered_at = (await session.scalars(select(Message.created_at).where(Message.direction == "outbound"))).one()
        asked_at = (await session.scalars(select(Message.created_at).where(Message.author == "customer").order_by(Message.id.desc()))).first()
    assert asked_at is not None and (answered_at - asked_at).total_seconds() >= 0.6
    assert time.monotonic() - last_sent < 5


async def test_queue_answers_every_message_on_its_own_in_order_even_with_a_slow_model(setup: Setup) -> None:
    await set_policy(setup, strategy="queue")
    setup.model.latency = 0.5
    conversation_id = await burst(setup, ["one", "two", "three"], gap=0.1)
    assert await replies(setup.runtime, conversation_id, 3) == ["ack: one", "ack: two", "ack: three"]
    assert len(setup.fake.chat_requests) == 3
    turns = await answered_by(setup.runtime, conversation_id)
    assert len(set(turns)) == 3 and None not in turns


def test_a_process_with_the_removed_burst_window_set_says_what_replaced_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    from callable_agents.core.config import load_settings

    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    monkeypatch.setenv("CALLABLE_COALESCE_SECONDS", "2")
    with caplog.at_level("WARNING", logger="callable_agents.core.config"):
        load_settings()
    [warning] = [r.getMessage() for r in caplog.records if "COALESCE" in r.getMessage()]
    assert "CALLABLE_COALESCE_SECONDS is set but no longer read" in warning and "strategy: wait" in warning
    caplog.clear()
    monkeypatch.delenv("CALLABLE_COALESCE_SECONDS")
    with caplog.at_level("WARNING", logger="callable_agents.core.config"):
        load_settings()
    assert not caplog.records
