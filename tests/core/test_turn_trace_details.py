"""A turn's trace row records the model that answered, its token usage and each tool call.

Real langchain-openai client against the loopback FakeOpenAI (which reports ``usage``), a
scripted tool call, and a tool whose configuration holds a secret the trace must not show.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import StructuredTool
from pydantic import BaseModel
from sqlalchemy import select

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.contracts.tools import ToolContext, ToolType
from callable_agents.core.conversation.turn.result import TRACED_CHARS
from callable_agents.core.models import Trace
from callable_agents.core.runtime import Runtime
from callable_agents.testing.openai_server import FakeOpenAI
from tests.conftest import make_settings
from tests.core.pipeline_helpers import drain, outbound, say
from tests.core.test_agent_turns import online_agent

SECRET = "sk-order-system-7f3a9c"


class LookupConfig(BaseModel):
    api_token: str


class LookupPlugin:
    """A tool with a secret in its configuration and a long result."""

    @hookimpl
    def register_tools(self) -> list[ToolType]:
        return [ToolType(name="order_lookup", description="Looks up an order", config_schema=LookupConfig, factory=self._factory)]

    def _factory(self, context: ToolContext) -> StructuredTool:
        async def lookup(order: str) -> str:
            return f"Order {order} ships tomorrow. " + "x" * 3000

        return StructuredTool.from_function(coroutine=lookup, name=context.tool_name, description="Look up an order by number.")


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    with FakeOpenAI(api_key="sk-workspace-key") as server:
        yield server


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(make_settings(tmp_path / "data"), migrate=True, extra_plugins=[("test-order-lookup", LookupPlugin())])
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


async def _channel(runtime: Runtime, fake: FakeOpenAI, **settings: object) -> Any:
    _agent, channel = await online_agent(
        runtime, fake, tools=[{"type": "order_lookup", "name": "lookup", "config": {"api_token": SECRET}}], **settings
    )
    return channel


async def _turn_trace(runtime: Runtime, conversation_id: str) -> dict[str, Any]:
    async with runtime.db.session() as session:
        rows = (await session.scalars(select(Trace).where(Trace.conversation_id == conversation_id, Trace.step == "turn"))).all()
    assert len(rows) == 1
    return dict(rows[0].data)


async def test_the_trace_has_the_model_tokens_and_tool_calls_without_the_tools_secret(runtime: Runtime, fake: FakeOpenAI) -> None:
    channel = await _channel(runtime, fake)
    fake.queue_tool_call("lookup", {"order": "A-17"})
    fake.queue_reply("Your order ships tomorrow.")
    accepted = await say(runtime, channel, "Where is order A-17?")
    await drain(runtime)
    assert [m.text for m in await outbound(runtime, accepted.conversation_id)] == ["Your order ships tomorrow."]
    trace = await _turn_trace(runtime, accepted.conversation_id)

    assert trace["model"] == "gpt-test"
    tokens = trace["tokens"]
    assert set(tokens) == {"prompt", "completion", "total"}
    assert tokens["prompt"] > 0 and tokens["completion"] > 0
    assert tokens["total"] == tokens["prompt"] + tokens["completion"]
    [call] = trace["tool_calls"]
    assert call["name"] == "lookup"
    assert json.loads(call["arguments"]) == {"order": "A-17"}
    assert call["result"].startswith("Order A-17 ships tomorrow. xxx")
    assert len(call["result"]) == TRACED_CHARS and call["result"].endswith("…")  # shortened
    assert SECRET not in json.dumps(trace)  # the tool's configuration is not the call's arguments


async def test_tokens_sum_over_the_turns_model_calls(runtime: Runtime, fake: FakeOpenAI) -> None:
    channel = await _channel(runtime, fake)
    fake.queue_reply("Hello.")
    first = await say(runtime, channel, "hi")
    await drain(runtime)
    one_call = (await _turn_trace(runtime, first.conversation_id))["tokens"]

    other = await say(runtime, channel, "Where is order B-2?", user="visitor-2")
    fake.queue_tool_call("lookup", {"order": "B-2"})
    fake.queue_reply("Hello.")
    await drain(runtime)
    two_calls = (await _turn_trace(runtime, other.conversation_id))["tokens"]
    # The same final reply, plus a call that asked for the tool: more completion tokens, and
    # the prompt counted twice.
    assert two_calls["completion"] > one_call["completion"]
    assert two_calls["prompt"] > 2 * one_call["prompt"] - 10


async def test_the_fallback_models_name_is_recorded_when_the_primary_fails(runtime: Runtime, fake: FakeOpenAI) -> None:
    channel = await _channel(runtime, fake, fallback_model="gpt-backup")
    fake.queue_error(503)
    fake.queue_reply("Answered by the backup.")
    accepted = await say(runtime, channel, "hello")
    await drain(runtime)
    trace = await _turn_trace(runtime, accepted.conversation_id)
    assert trace["model"] == "gpt-backup"
    assert trace["tokens"]["completion"] > 0
    assert "tool_calls" not in trace  # none made


async def test_a_turn_no_model_answered_records_no_model_or_tokens(runtime: Runtime, fake: FakeOpenAI) -> None:
    channel = await _channel(runtime, fake)
    fake.queue_error(500)
    accepted = await say(runtime, channel, "hello")
    await drain(runtime)
    trace = await _turn_trace(runtime, accepted.conversation_id)
    assert trace["outcome"] == "fallback"
    assert "model" not in trace and "tokens" not in trace
