"""Building a workspace, agent and channel for pipeline tests, and running its jobs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from callable_agents.core.jobs import Worker
from callable_agents.core.models import Agent, Channel, Message, Workspace
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.conversation.inbound import InboundMessage, accept_inbound
from callable_agents.core.conversation.jobs import register_conversation_jobs
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.workspaces import create_workspace
from callable_agents.testing.openai_server import message_text


async def make_agent_channel(
    runtime: Runtime,
    *,
    kind: str = "terminal",
    model_settings: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    knowledge_base_ids: list[str] | None = None,
    workspace_name: str = "Shop",
    **agent_fields: Any,
) -> tuple[Agent, Channel]:
    register_conversation_jobs(runtime)
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, workspace_name)
        agent = Agent(
            workspace_id=workspace.id,
            name="assistant",
            system_prompt="You are the assistant of Bella's Bakery.",
            business_info={"name": "Bella's Bakery", "hours": "Mon-Sat 7:00-18:00"},
            model_settings=model_settings or {},
            tools=tools or [],
            knowledge_base_ids=knowledge_base_ids or [],
            fallback_message="Sorry, something went wrong on our side. Please try again.",
            **agent_fields,
        )
        session.add(agent)
        await session.flush()
        channel = Channel(workspace_id=workspace.id, kind=kind, name=f"{kind}-channel", agent_id=agent.id)
        session.add(channel)
    return agent, channel


async def connect_fake_openai(runtime: Runtime, workspace_id: str, base_url: str, name: str = "openai") -> None:
    """An OpenAI integration ``name`` in the workspace, pointed at the fake OpenAI server."""
    async with runtime.db.session() as session:
        workspace = await session.get(Workspace, workspace_id)
        assert workspace is not None
        await connect_integration(
            session, runtime.vault, workspace, provider="openai", name=name,
            public={"base_url": base_url}, secrets={"api_key": "sk-test"},
        )


async def say(runtime: Runtime, channel: Channel, text: str, user: str = "visitor-1", sid: str | None = None):  # type: ignore[no-untyped-def]
    return await accept_inbound(runtime, channel, InboundMessage(external_user_id=user, text=text, provider_message_id=sid))


async def drain(runtime: Runtime, timeout: float = 30) -> None:
    await Worker(runtime).drain(timeout=timeout)


async def outbound(runtime: Runtime, conversation_id: str) -> list[Message]:
    async with runtime.db.session() as session:
        rows = await session.scalars(
            select(Message).where(Message.conversation_id == conversation_id, Message.direction == "outbound").order_by(Message.id)
        )
        return list(rows.all())


def ack(request_json: dict[str, Any]) -> str:
    """``ack: a | b``: every customer message since the agent last spoke, in order."""
    this_turn: list[str] = []
    for message in reversed(request_json.get("messages") or []):
        if message.get("role") == "user":
            this_turn.insert(0, message_text(message).strip())
        elif message.get("role") in ("assistant", "tool"):
            break
    return "ack: " + " | ".join(this_turn)
