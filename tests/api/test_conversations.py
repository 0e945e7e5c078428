"""The conversation inbox with another workspace's conversation ids: not found, nothing changed."""

from __future__ import annotations

from sqlalchemy import select

from callable_agents.core.models import Conversation, Message
from tests.api.conftest import ApiEnv
from tests.core.pipeline_helpers import make_agent_channel, say


async def test_another_workspaces_conversations_are_not_found(env: ApiEnv) -> None:
    _agent, channel = await make_agent_channel(env.runtime, workspace_name="Elsewhere")
    accepted = await say(env.runtime, channel, "Hello, is anyone there?")
    conversation = f"/conversations/{accepted.conversation_id}"
    assert (await env.api.get(conversation)).status_code == 404
    assert (await env.api.post(f"{conversation}/takeover", json={"reason": "mine now"})).status_code == 404
    assert (await env.api.post(f"{conversation}/reply", json={"text": "Hi from Acme"})).status_code == 404
    assert (await env.api.post(f"{conversation}/return")).status_code == 404
    assert (await env.api.get("/conversations")).json() == {"conversations": [], "next_before": None}
    async with env.runtime.db.sessions() as session:
        row = await session.scalar(select(Conversation).where(Conversation.id == accepted.conversation_id))
        texts = (await session.scalars(select(Message.text).where(Message.conversation_id == accepted.conversation_id))).all()
    assert row is not None and row.status == "bot" and list(texts) == ["Hello, is anyone there?"]
