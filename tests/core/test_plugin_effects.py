"""A third-party tool's effects reach core only through types and hooks: its offline route,
its ``Command`` effects (a sent item, a queued job of a kind it registered) and its job kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool
from pydantic import BaseModel

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.contracts.effects import Effect, QueueJob, SendItem
from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.contracts.jobs import JobKind
from callable_agents.core.contracts.tools import ToolContext, ToolType, effect_tool
from callable_agents.core.models import Job
from callable_agents.core.runtime import Runtime
from tests.conftest import make_settings
from tests.core.pipeline_helpers import drain, make_agent_channel, outbound, say

CALLBACK_NOTE = "We will call you back within the hour."


class NoConfig(BaseModel):
    pass


class CallbackPlugin:
    """Books a callback: tells the customer (a SendItem) and queues its own job (QueueJob)."""

    def __init__(self) -> None:
        self.booked: list[dict[str, Any]] = []

    @hookimpl
    def register_tools(self) -> list[ToolType]:
        return [
            ToolType(
                name="callback", description="Book a callback", config_schema=NoConfig, factory=self._factory,
                offline_route=lambda text: {"topic": text} if "call me back" in text.lower() else None,
            )
        ]

    @hookimpl
    def register_job_kinds(self) -> list[JobKind]:
        return [JobKind(name="book_callback", handler=self._book)]

    async def _book(self, runtime: Runtime, job: Job) -> None:
        from callable_agents.core.jobs import complete

        self.booked.append(dict(job.payload))
        await complete(runtime, job)

    def _factory(self, context: ToolContext) -> BaseTool:
        def run(arguments: dict[str, Any], turn_effects: Sequence[Effect]) -> tuple[str, list[Effect]]:
            job = QueueJob(kind="book_callback", payload={"conversation_id": context.conversation_id, **arguments})
            return "Booked.", [SendItem(text=CALLBACK_NOTE), job]

        schema = {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}
        return effect_tool(name=context.tool_name, description="Book a callback.", args_schema=schema, run=run)


@pytest.fixture
def callback() -> CallbackPlugin:
    return CallbackPlugin()


@pytest.fixture
async def runtime(tmp_path: Path, callback: CallbackPlugin) -> AsyncIterator[Runtime]:
    settings = make_settings(tmp_path / "data")
    runtime = await open_runtime(settings, migrate=True, extra_plugins=[("callback", callback)])
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


async def test_offline_route_effects_and_job_kind_of_a_third_party_tool(runtime: Runtime, callback: CallbackPlugin) -> None:
    from callable_agents.core.conversation.jobs import register_conversation_jobs

    register_conversation_jobs(runtime)
    _agent, channel = await make_agent_channel(runtime, tools=[{"type": "callback", "name": "book_callback", "config": {}}])
    accepted = await say(runtime, channel, "Please call me back about my order")
    await drain(runtime)

    replies = await outbound(runtime, accepted.conversation_id)
    assert [m.text for m in replies][-1] == CALLBACK_NOTE  # the SendItem, as its own message
    assert replies[-1].meta == {"effect": "send_item"}
    assert callback.booked == [{"conversation_id": accepted.conversation_id, "topic": "Please call me back about my order"}]
