"""A WhatsApp workspace served in-process, with the fake Twilio and the fake OpenAI, for the
observability tests: signed webhooks in, the worker's turns and sends out, all real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from callable_agents.core.knowledge import add_source, create_knowledge_base, ingest_source
from callable_agents.core.models import Agent
from callable_agents.core.runtime import Runtime
from callable_agents.server import create_app
from callable_agents.testing.openai_server import FakeOpenAI
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import inbound_params, new_message_sid, signed_headers
from tests.e2e.conftest import MODEL_SETTINGS, OPENAI_KEY
from tests.e2e.whatsapp_support import ACCOUNT, SENDER, TOKEN, WhatsAppWorld, make_world, serving, sqlite_settings

METRICS_TOKEN = "metrics-token-0123456789abcdef"
HANDOFF_TOOL = {"type": "handoff", "name": "talk_to_a_person", "config": {}}


@dataclass
class Served:
    client: httpx.AsyncClient
    runtime: Runtime
    world: WhatsAppWorld
    twilio: FakeTwilio
    openai: FakeOpenAI

    async def webhook(self, body: str, *, customer: str, sid: str | None = None, token: str = TOKEN) -> httpx.Response:
        params = inbound_params(ACCOUNT, customer, SENDER, body, sid or new_message_sid())
        path = self.world.path("inbound")
        url = self.world.urls(self.runtime)["inbound"]
        return await self.client.post(path, data=params, headers=signed_headers(token, url, params))

    async def status_callback(self, message_sid: str, status: str, **extra: str) -> httpx.Response:
        params = {"AccountSid": ACCOUNT, "MessageSid": message_sid, "MessageStatus": status, **extra}
        path = self.world.path("status")
        url = self.world.urls(self.runtime)["status"]
        return await self.client.post(path, data=params, headers=signed_headers(TOKEN, url, params))

    async def replies_to(self, customer: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        """Wait until Twilio was asked to create ``count`` messages to ``customer``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            sent = [m for m in self.twilio.sent_messages if m.get("to") == customer]
            if len(sent) >= count:
                return sent
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{customer}: {len(sent)} of {count} replies after {timeout}s")
            await asyncio.sleep(0.05)

    async def metrics(self) -> str:
        response = await self.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status_code == 200, response.text
        return response.text


@asynccontextmanager
async def served(
    tmp_path: Path, *, tools: list[dict[str, Any]] | None = None, knowledge: str | None = None, **settings: Any
) -> AsyncIterator[Served]:
    """The app serving a WhatsApp channel whose agent has ``tools`` and, given ``knowledge``, a
    knowledge base holding that text; the worker runs in the app."""
    twilio = FakeTwilio().start()
    twilio.add_account(ACCOUNT, TOKEN)
    openai = FakeOpenAI(api_key=OPENAI_KEY).start()
    try:
        app = create_app(
            sqlite_settings(
                tmp_path,
                twilio_api_base_url=twilio.base_url,
                twilio_messaging_base_url=twilio.base_url,
                coalesce_seconds=0,
                **{"metrics_token": METRICS_TOKEN, "run_worker": True, **settings},
            )
        )
        async with serving(app) as client:
            runtime: Runtime = app.state.runtime
            world = await make_world(runtime, model_settings=MODEL_SETTINGS, openai=(openai.base_url, OPENAI_KEY))
            if tools:
                async with runtime.db.session() as session:
                    await session.execute(update(Agent).where(Agent.id == world.agent.id).values(tools=tools))
            if knowledge is not None:
                await add_knowledge(runtime, world, knowledge)
            yield Served(client, runtime, world, twilio, openai)
    finally:
        twilio.close()
        openai.close()


async def add_knowledge(runtime: Runtime, world: WhatsAppWorld, text: str) -> None:
    async with runtime.db.session() as session:
        workspace_id = world.workspace.id
        kb = await create_knowledge_base(session, workspace_id, "bakery", runtime=runtime)
        source = await add_source(session, workspace_id, kb.id, runtime=runtime, kind="text", title="Hours", content=text.encode())
        await session.execute(update(Agent).where(Agent.id == world.agent.id).values(knowledge_base_ids=[kb.id]))
    await ingest_source(runtime, workspace_id, source.id)
