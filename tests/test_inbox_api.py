"""Handoff end to end: the agent hands off, stays silent, a person replies, the agent resumes."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import select

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.models import Agent, Workspace
from callable_agents.core.store.workspaces import create_api_key
from callable_agents.server import create_app
from tests.conftest import make_settings
from tests.core.pipeline_helpers import drain, make_agent_channel, outbound, say
from callable_agents.testing.openai_server import FakeOpenAI

HANDOFF_TOOL = {"type": "handoff", "name": "handoff", "config": {"customer_message": "A person will reply here shortly."}}


async def test_handoff_silence_person_reply_and_return(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", run_worker=False)
    runtime = await open_runtime(settings, migrate=True)
    app = create_app(settings)
    app.state.runtime = runtime
    try:
        agent, channel = await make_agent_channel(runtime, tools=[HANDOFF_TOOL])
        async with runtime.db.session() as session:
            _row, key = await create_api_key(session, agent.workspace_id, "inbox")
        api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"Authorization": f"Bearer {key}"}
        )

        # Offline mode routes a person request to the handoff tool.
        first = await say(runtime, channel, "I want to talk to a person please")
        await drain(runtime)
        conversation_id = first.conversation_id
        replies = await outbound(runtime, conversation_id)
        assert [(m.author, m.text) for m in replies] == [("system", "A person will reply here shortly.")]
        listed = (await api.get("/api/v1/conversations", params={"status": "human"})).json()["conversations"]
        assert [c["id"] for c in listed] == [conversation_id]
        assert listed[0]["handoff_reason"] == "The customer asked to talk to a person."

        # While handed off the agent does not answer.
        await say(runtime, channel, "hello? anyone?")
        await drain(runtime)
        assert len(await outbound(runtime, conversation_id)) == 1

        # A person's reply goes out through the pipeline.
        sent = await api.post(f"/api/v1/conversations/{conversation_id}/reply", json={"text": "Hi, this is Maria."})
        assert sent.status_code == 202
        await drain(runtime)
        human = (await outbound(runtime, conversation_id))[-1]
        assert (human.author, human.text, human.status) == ("human", "Hi, this is Maria.", "delivered")

        bad = await api.post(f"/api/v1/conversations/{conversation_id}/reply", json={"text": "  "})
        assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("text:")
        assert (await api.get("/api/v1/conversations/nope")).status_code == 404
        assert (await api.get("/api/v1/conversations", params={"status": "weird"})).status_code == 422

        # Returned to the agent (now with a model): the person's messages are in its history.
        with FakeOpenAI(api_key="sk-inbox") as fake:
            async with runtime.db.session() as session:
                workspace = await session.get(Workspace, agent.workspace_id)
                assert workspace is not None
                await connect_integration(
                    session, runtime.vault, workspace, provider="openai", name="openai-main",
                    public={"base_url": fake.base_url}, secrets={"api_key": "sk-inbox"},
                )
                stored = await session.scalar(select(Agent).where(Agent.id == agent.id))
                assert stored is not None
                stored.model_settings = {"integration": "openai-main", "model": "gpt-test", "max_retries": 0}
            assert (await api.post(f"/api/v1/conversations/{conversation_id}/return")).json() == {"status": "bot"}
            fake.queue_reply("Glad Maria could help!")
            await say(runtime, channel, "thanks, all sorted")
            await drain(runtime)
            assert (await outbound(runtime, conversation_id))[-1].text == "Glad Maria could help!"
            prompt = fake.chat_requests[-1].prompt_text
            assert "Hi, this is Maria." in prompt and "hello? anyone?" in prompt
            assert fake.chat_requests[-1].last_user_message == "thanks, all sorted"

        detail = (await api.get(f"/api/v1/conversations/{conversation_id}")).json()
        assert detail["status"] == "bot"
        assert [m["author"] for m in detail["messages"]] == [
            "customer", "system", "customer", "human", "customer", "agent",
        ]
        assert [t["data"]["outcome"] for t in detail["trace"]] == ["handed_off", "answered"]
        await api.aclose()
    finally:
        await close_runtime(runtime)
