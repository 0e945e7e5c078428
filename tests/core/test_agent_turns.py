"""Agent turns against the fake OpenAI server with the real langchain-openai client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langchain_core.tools import StructuredTool
from pydantic import BaseModel
from sqlalchemy import text

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.conversation.turn.graph import HISTORY_MESSAGES
from callable_agents.core.conversation.turn.prompt import PROMPT_TOKEN_BUDGET
from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.models import Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.core.conversation.streams import StreamHub
from callable_agents.core.contracts.channels import ChannelCapabilities, ChannelType, OutboundMessage, SendResult
from callable_agents.core.conversation.inbound import InboundMessage, accept_inbound
from callable_agents.core.contracts.tools import ToolContext, ToolType
from tests.conftest import make_settings
from tests.core.pipeline_helpers import drain, make_agent_channel, outbound, say
from callable_agents.testing.openai_server import FakeOpenAI, ScriptedReply, ScriptedToolCall, last_user_message

FALLBACK = "Sorry, something went wrong on our side. Please try again."


class NoConfig(BaseModel):
    pass


class CounterPlugin:
    """A tool that counts its calls: enough to drive tool rounds."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def register_tools(self) -> list[ToolType]:
        return [ToolType(name="counter", description="Counts", config_schema=NoConfig, factory=self._factory)]

    def _factory(self, context: ToolContext) -> StructuredTool:
        async def count() -> str:
            self.calls += 1
            return f"count is {self.calls}"

        return StructuredTool.from_function(coroutine=count, name=context.tool_name, description="Count one more.")


@pytest.fixture
def counter() -> CounterPlugin:
    return CounterPlugin()


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    with FakeOpenAI(api_key="sk-workspace-key") as server:
        yield server


@pytest.fixture
async def runtime(tmp_path: Path, counter: CounterPlugin) -> AsyncIterator[Runtime]:
    settings = make_settings(tmp_path / "data")
    runtime = await open_runtime(settings, migrate=True, extra_plugins=[("counter", counter)])
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


async def online_agent(  # type: ignore[no-untyped-def]
    runtime: Runtime, fake: FakeOpenAI, kind: str = "terminal", tools: list[dict[str, object]] | None = None, **settings: object
):
    agent, channel = await make_agent_channel(
        runtime,
        kind=kind,
        model_settings={"integration": "openai-main", "model": "gpt-test", "max_retries": 0, "timeout": 2, **settings},
        tools=tools if tools is not None else [{"type": "counter", "name": "count", "config": {}}],
    )
    async with runtime.db.session() as session:
        workspace = await session.get(Workspace, agent.workspace_id)
        assert workspace is not None
        await connect_integration(
            session, runtime.vault, workspace, provider="openai", name="openai-main",
            public={"base_url": fake.base_url}, secrets={"api_key": "sk-workspace-key"},
        )
    return agent, channel


async def test_uses_the_workspace_key_and_base_url(runtime: Runtime, fake: FakeOpenAI) -> None:
    _agent, channel = await online_agent(runtime, fake)
    fake.queue_reply("Hello from the model.")
    accepted = await say(runtime, channel, "hi")
    await drain(runtime)
    assert [m.text for m in await outbound(runtime, accepted.conversation_id)] == ["Hello from the model."]
    assert fake.chat_requests[0].bearer_token == "sk-workspace-key"
    assert fake.chat_requests[0].tool_names == ["count"]


async def test_tool_round_trip_then_answer(runtime: Runtime, fake: FakeOpenAI, counter: CounterPlugin) -> None:
    _agent, channel = await online_agent(runtime, fake)
    fake.queue_tool_call("count", {})
    fake.queue_reply("I counted once.")
    accepted = await say(runtime, channel, "count please")
    await drain(runtime)
    assert counter.calls == 1
    assert [m.text for m in await outbound(runtime, accepted.conversation_id)] == ["I counted once."]
    second = fake.chat_requests[1]
    assert any(m.get("role") == "tool" and m.get("content") == "count is 1" for m in second.messages)


async def test_tool_rounds_are_bounded_then_fallback(runtime: Runtime, fake: FakeOpenAI, counter: CounterPlugin) -> None:
    _agent, channel = await online_agent(runtime, fake, max_tool_rounds=2)
    fake.responder = lambda request: ScriptedReply(tool_calls=(ScriptedToolCall(name="count", arguments={}),))
    accepted = await say(runtime, channel, "count forever")
    await drain(runtime)
    assert counter.calls == 2
    assert [m.text for m in await outbound(runtime, accepted.conversation_id)] == [FALLBACK]


async def test_provider_error_and_timeout_give_the_fallback(runtime: Runtime, fake: FakeOpenAI) -> None:
    _agent, channel = await online_agent(runtime, fake)
    fake.queue_error(500)
    accepted = await say(runtime, channel, "first")
    await drain(runtime)
    fake.queue_reply("too late", delay=4)
    await say(runtime, channel, "second")
    await drain(runtime)
    fake.queue_reply("Back to normal.")
    await say(runtime, channel, "third")
    await drain(runtime)
    assert [m.text for m in await outbound(runtime, accepted.conversation_id)] == [FALLBACK, FALLBACK, "Back to normal."]


async def test_fallback_model_answers_when_the_primary_fails(runtime: Runtime, fake: FakeOpenAI) -> None:
    _agent, channel = await online_agent(runtime, fake, fallback_model="gpt-backup")
    fake.queue_error(503)
    fake.queue_reply("Answered by the backup.")
    accepted = await say(runtime, channel, "hello")
    await drain(runtime)
    assert [m.text for m in await outbound(runtime, accepted.conversation_id)] == ["Answered by the backup."]
    assert [r.json_body["model"] for r in fake.chat_requests] == ["gpt-test", "gpt-backup"]


async def test_streamed_tokens_reach_a_subscriber(runtime: Runtime, fake: FakeOpenAI) -> None:
    _agent, channel = await online_agent(runtime, fake, kind="widget")  # a channel that shows tokens
    first = await say(runtime, channel, "warm up")
    await drain(runtime)
    fake.queue_reply("Fresh bread every morning at seven.", chunk_delay=0.01)
    events: list[dict[str, object]] = []

    async def listen() -> None:
        async with StreamHub.of(runtime).subscribe(first.conversation_id) as queue:
            while True:
                event = await queue.get()
                events.append(event)
                if event["type"] == "message":
                    return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0)
    await say(runtime, channel, "when is bread ready?")
    await drain(runtime)
    await asyncio.wait_for(listener, 5)
    tokens = [e["text"] for e in events if e["type"] == "token"]
    assert len(tokens) > 3 and "".join(tokens) == "Fresh bread every morning at seven."  # type: ignore[arg-type]
    assert events[-1]["text"] == "Fresh bread every morning at seven."


async def _checkpoint_bytes(runtime: Runtime, thread_id: str) -> int:
    async with runtime.db.engine.connect() as conn:
        stored = await conn.execute(
            text(
                "SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) FROM checkpoints WHERE thread_id = :t"
            ),
            {"t": thread_id},
        )
        writes = await conn.execute(
            text("SELECT coalesce(sum(length(value)), 0) FROM writes WHERE thread_id = :t"), {"t": thread_id}
        )
        return int(stored.scalar() or 0) + int(writes.scalar() or 0)


@pytest.mark.timeout(300)
async def test_two_hundred_turns_keep_storage_and_prompts_bounded(runtime: Runtime, fake: FakeOpenAI) -> None:
    _agent, channel = await online_agent(runtime, fake)
    # Echo a long-ish answer so history really accumulates.
    fake.responder = lambda request: "You said: " + last_user_message(request) + " " + "detail " * 40
    sizes: dict[int, int] = {}
    conversation_id = ""
    for turn in range(1, 201):
        accepted = await say(runtime, channel, f"question number {turn} " + "about cakes " * 20)
        conversation_id = accepted.conversation_id
        await drain(runtime)
        if turn in (25, 100, 200):
            sizes[turn] = await _checkpoint_bytes(runtime, conversation_id)
    assert len(await outbound(runtime, conversation_id)) == 200
    bound = 128 * 1024
    assert all(size < bound for size in sizes.values()), sizes
    assert sizes[200] <= sizes[25] * 1.25, sizes  # flat, not growing with the turns
    budget_chars = PROMPT_TOKEN_BUDGET * 4
    for request in fake.chat_requests:
        history = [m for m in request.messages if m.get("role") != "system"]
        assert len(history) <= HISTORY_MESSAGES + 1
        assert sum(len(str(m.get("content") or "")) for m in history) <= budget_chars


class PhotoChannelPlugin:
    """A channel whose media_input turns an image into an image block or a note."""

    @hookimpl
    def register_channels(self) -> list[ChannelType]:
        async def send(runtime: object, message: OutboundMessage) -> SendResult:
            return SendResult(provider_message_id=f"photo-{message.message_id}", status="delivered")

        async def media_input(runtime: object, message: object, accepts_images: bool) -> list[dict[str, object]]:
            if accepts_images:
                return [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
            return [{"type": "text", "text": "[The customer sent an image you cannot see.]"}]

        return [ChannelType(name="photo", description="Photos", config_schema=NoConfig,
                            capabilities=ChannelCapabilities(images_in=True), send=send, media_input=media_input)]


@pytest.mark.parametrize("accepts_images", [True, False])
async def test_customer_images_reach_the_model_only_when_it_accepts_them(
    tmp_path: Path, fake: FakeOpenAI, accepts_images: bool
) -> None:
    settings = make_settings(tmp_path / "data")
    runtime = await open_runtime(settings, migrate=True, extra_plugins=[("photo", PhotoChannelPlugin())])
    try:
        agent, channel = await make_agent_channel(
            runtime, kind="photo",
            model_settings={"integration": "openai-main", "model": "gpt-test", "max_retries": 0,
                            "accepts_images": accepts_images},
        )
        async with runtime.db.session() as session:
            workspace = await session.get(Workspace, agent.workspace_id)
            assert workspace is not None
            await connect_integration(session, runtime.vault, workspace, provider="openai", name="openai-main",
                                      public={"base_url": fake.base_url}, secrets={"api_key": "sk-workspace-key"})
        fake.queue_reply("Nice cake!")
        await accept_inbound(runtime, channel, InboundMessage(
            external_user_id="u1", text="Is this one available?",
            media=[{"url": "https://media.example/1", "content_type": "image/png"}],
        ))
        await drain(runtime)
        user_content = [m for m in fake.chat_requests[0].messages if m.get("role") == "user"][-1]["content"]
        kinds = [part["type"] for part in user_content]
        assert kinds == (["text", "image_url"] if accepts_images else ["text", "text"])
        assert user_content[0]["text"] == "Is this one available?"
    finally:
        await close_runtime(runtime)
