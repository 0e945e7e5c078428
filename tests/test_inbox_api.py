"""Handoff end to end: the agent hands off, stays silent, a person replies, the agent resumes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.models import Agent, Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.workspaces import create_api_key
from callable_agents.server import create_app
from tests.conftest import make_settings
from tests.core.pipeline_helpers import drain, make_agent_channel, outbound, say
from callable_agents.testing.openai_server import FakeOpenAI

@asynccontextmanager
async def api_runtime(tmp_path: Path, database_url: str | None = None) -> AsyncIterator[tuple[Runtime, Starlette]]:
    """A migrated runtime (worker off: tests drain) and the app serving it in-process."""
    settings = make_settings(tmp_path / "data", database_url, run_worker=False)
    runtime = await open_runtime(settings, migrate=True)
    app = create_app(settings)
    app.state.runtime = runtime
    try:
        yield runtime, app
    finally:
        await close_runtime(runtime)


HANDOFF_TOOL = {"type": "handoff", "name": "handoff", "config": {"customer_message": "A person will reply here shortly."}}


async def test_handoff_silence_person_reply_and_return(tmp_path: Path) -> None:
    async with api_runtime(tmp_path) as (runtime, app):
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
        # The return notice (the default text) told the customer the assistant is back.
        assert [m["author"] for m in detail["messages"]] == [
            "customer", "system", "customer", "human", "system", "customer", "agent",
        ]
        assert detail["messages"][4]["text"] == "You're chatting with our assistant again."
        assert [t["data"]["outcome"] for t in detail["trace"]] == ["handed_off", "answered"]
        answered = detail["trace"][1]["data"]
        assert answered["model"] == "gpt-test"  # the model, its tokens (FakeOpenAI reports usage)
        assert answered["tokens"]["total"] == answered["tokens"]["prompt"] + answered["tokens"]["completion"] > 0
        await api.aclose()


async def test_the_inbox_api_lists_filters_pages_assigns_notes_and_closes(tmp_path: Path, database_url: str) -> None:
    """Admin API parity with the dashboard's inbox, and another workspace's ids are not found
    (on SQLite and PostgreSQL)."""
    from callable_agents.core.store.users import create_user

    async with api_runtime(tmp_path, database_url) as (runtime, app):
        agent, channel = await make_agent_channel(runtime, tools=[HANDOFF_TOOL])
        _other_agent, other_channel = await make_agent_channel(runtime, workspace_name="Other shop")
        async with runtime.db.session() as session:
            _row, key = await create_api_key(session, agent.workspace_id, "inbox")
            member = await create_user(session, agent.workspace_id, email="maria@example.com", name="Maria", role="member")
            outsider = await create_user(session, other_channel.workspace_id, email="eve@example.com", name="Eve", role="owner")
        api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"Authorization": f"Bearer {key}"})

        ids = []
        for n in range(5):
            accepted = await say(runtime, channel, f"question number {n} about sourdough", user=f"+1555000{n}")
            ids.append(accepted.conversation_id)
        theirs = (await say(runtime, other_channel, "sourdough secrets", user="+15550000")).conversation_id
        await drain(runtime)

        page = (await api.get("/api/v1/conversations", params={"limit": 2})).json()
        assert [c["id"] for c in page["conversations"]] == ids[::-1][:2]
        first = page["conversations"][0]
        assert first["channel"] == {"id": channel.id, "name": "terminal-channel", "kind": "terminal"}
        assert first["last_message"]["author"] == "agent" and first["reply_window_closes_at"] is None
        rest = (await api.get("/api/v1/conversations", params={"limit": 50, "before": page["next_before"]})).json()
        assert [c["id"] for c in rest["conversations"]] == ids[::-1][2:] and rest["next_before"] is None
        found = (await api.get("/api/v1/conversations", params={"q": "number 3"})).json()["conversations"]
        assert [c["id"] for c in found] == [ids[3]]
        by_number = (await api.get("/api/v1/conversations", params={"q": "+15550001"})).json()["conversations"]
        assert [c["id"] for c in by_number] == [ids[1]]
        assert theirs not in {c["id"] for c in (await api.get("/api/v1/conversations", params={"q": "sourdough"})).json()["conversations"]}

        # Reply to a conversation the agent has: it is taken over first, with the notice once.
        replied = await api.post(f"/api/v1/conversations/{ids[0]}/reply", json={"text": "Maria here.", "user_id": member.id})
        assert replied.status_code == 202 and replied.json()["took_over"] is True
        again = await api.post(f"/api/v1/conversations/{ids[0]}/reply", json={"text": "Still me.", "user_id": member.id})
        assert again.json()["took_over"] is False
        await drain(runtime)
        texts = [(m.author, m.text) for m in await outbound(runtime, ids[0])][1:]
        assert texts == [("system", "Maria from our team has joined the conversation."), ("human", "Maria here."), ("human", "Still me.")]
        detail = (await api.get(f"/api/v1/conversations/{ids[0]}")).json()
        assert detail["status"] == "human" and detail["assignee_id"] == member.id and detail["assignee_name"] == "Maria"
        assert detail["messages"][-1]["author_name"] == "Maria"
        mine = (await api.get("/api/v1/conversations", params={"assignee": member.id})).json()["conversations"]
        assert [c["id"] for c in mine] == [ids[0]]
        assert (await api.get("/api/v1/conversations", params={"needs_person": "true"})).json()["conversations"] == []

        # Notes stay internal; assigning; closing.
        noted = await api.post(f"/api/v1/conversations/{ids[1]}/notes", json={"text": "VIP customer", "author_name": "Maria"})
        assert noted.status_code == 201
        assert (await api.post(f"/api/v1/conversations/{ids[1]}/notes", json={"text": "  "})).status_code == 422
        assert [n["text"] for n in (await api.get(f"/api/v1/conversations/{ids[1]}")).json()["notes"]] == ["VIP customer"]
        assert "VIP customer" not in [m.text for m in await outbound(runtime, ids[1])]
        assert (await api.post(f"/api/v1/conversations/{ids[1]}/assign", json={"user_id": member.id})).status_code == 200
        bad_assignee = await api.post(f"/api/v1/conversations/{ids[1]}/assign", json={"user_id": outsider.id})
        assert bad_assignee.status_code == 422 and "assignee" in bad_assignee.json()["error"]["message"]
        assert (await api.post(f"/api/v1/conversations/{ids[1]}/assign", json={})).status_code == 422
        assert (await api.post(f"/api/v1/conversations/{ids[2]}/close")).json() == {"status": "closed"}
        closed = (await api.get("/api/v1/conversations", params={"status": "closed"})).json()["conversations"]
        assert [c["id"] for c in closed] == [ids[2]]
        assert (await api.post(f"/api/v1/conversations/{ids[3]}/return")).status_code == 422  # the agent has it

        # Bad inputs name the field; another workspace's conversation is not found anywhere.
        assert "before" in (await api.get("/api/v1/conversations", params={"before": "nonsense"})).json()["error"]["message"]
        assert (await api.get("/api/v1/conversations", params={"limit": "0"})).status_code == 422
        assert (await api.get("/api/v1/conversations", params={"needs_person": "maybe"})).status_code == 422
        for method, path, body in (
            ("GET", "", None), ("POST", "/takeover", {}), ("POST", "/reply", {"text": "hi"}), ("POST", "/return", {}),
            ("POST", "/close", {}), ("POST", "/assign", {"user_id": None}), ("POST", "/notes", {"text": "x"}),
        ):
            response = await api.request(method, f"/api/v1/conversations/{theirs}{path}", json=body)
            assert response.status_code == 404, (path, response.text)
        await api.aclose()


def test_every_inbox_endpoint_is_in_the_openapi_document() -> None:
    from callable_agents.api.routes import openapi_document

    paths: dict[str, dict[str, dict[str, object]]] = openapi_document()["paths"]  # type: ignore[assignment]
    operations = [
        (path, method, spec) for path, methods in paths.items() if path.startswith("/conversations") for method, spec in methods.items()
    ]
    assert len(operations) == 8
    for path, method, spec in operations:
        responses = {int(code) for code in spec["responses"]}  # type: ignore[attr-defined]
        assert spec["summary"] and {200, 201, 202} & responses, (path, method)
        assert path == "/conversations" or 404 in responses, (path, method)


async def test_the_channels_own_notices_and_none(tmp_path: Path) -> None:
    """A channel's takeover notice replaces the default ({name}: the person); "" sends none."""
    from sqlalchemy import update

    from callable_agents.core.models import Channel

    async with api_runtime(tmp_path) as (runtime, app):
        agent, channel = await make_agent_channel(runtime)
        async with runtime.db.session() as session:
            await session.execute(update(Channel).where(Channel.id == channel.id).values(takeover_notice="Hi, {name} here.", return_notice=""))
            _row, key = await create_api_key(session, agent.workspace_id, "inbox")
        api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"Authorization": f"Bearer {key}"})
        conversation_id = (await say(runtime, channel, "hello")).conversation_id
        await drain(runtime)
        taken = await api.post(f"/api/v1/conversations/{conversation_id}/takeover", json={"author_name": "Sam"})
        assert taken.json() == {"status": "human", "taken_over": True}
        assert (await api.post(f"/api/v1/conversations/{conversation_id}/takeover", json={"author_name": "Sam"})).json()["taken_over"] is False
        assert (await api.post(f"/api/v1/conversations/{conversation_id}/return")).json() == {"status": "bot"}
        await drain(runtime)
        notices = [m.text for m in await outbound(runtime, conversation_id) if m.author == "system"]
        assert notices == ["Hi, Sam here."]  # once, and no return notice
        bad = await api.post(f"/api/v1/conversations/{conversation_id}/takeover", json={"reason": 5})
        assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("reason:")
        await api.aclose()
