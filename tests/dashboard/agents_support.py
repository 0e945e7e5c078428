"""What the Agents builder's tests share: a server with a tool type from a plugin defined here
(its settings form must be generated with no dashboard code), a knowledge base with text, and
polling the Test panel until a turn is shown."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from callable_agents.core.knowledge import add_source, create_knowledge_base, ingest_source
from callable_agents.core.runtime import Runtime
from callable_agents.plugin import ToolContext, ToolType, hookimpl
from callable_agents.server import create_app
from tests.dashboard.support import DashboardClient
from tests.plugins.webchat_support import LiveServer, web_settings


class TicketConfig(BaseModel):
    """A third-party tool's settings: every kind of control the generator makes."""

    queue: Literal["sales", "support"] = Field(default="support", description="Which team gets the ticket.")
    priority: int = Field(default=3, ge=1, le=5, description="1 (urgent) to 5.")
    api_url: str = Field(description="Where tickets are created, e.g. https://tickets.example.com.")
    tags: list[str] = Field(default_factory=list, description="Added to every ticket.")
    notify: bool = Field(default=False, description="E-mail the team.")


def _ticket_tool(context: ToolContext) -> BaseTool:
    config = context.config
    assert isinstance(config, TicketConfig)

    def open_ticket(summary: str) -> str:
        return f"ticket T-17 opened for {config.queue}: {summary}"

    return StructuredTool.from_function(open_ticket, name=context.tool_name, description="Open a support ticket.")


class TicketPlugin:
    @hookimpl
    def register_tools(self) -> list[ToolType]:
        return [ToolType(name="ticket", description="Open a ticket in the team's tracker.", config_schema=TicketConfig, factory=_ticket_tool)]


@asynccontextmanager
async def builder_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """The real server (worker on) with the ticket plugin loaded beside the built-in ones."""
    app = create_app(web_settings(tmp_path), extra_plugins=[("ticketing", TicketPlugin())])
    async with LiveServer(app) as server:
        yield server


async def add_text_knowledge(runtime: Runtime, workspace_id: str, name: str, title: str, text: str) -> None:
    """A knowledge base holding one pasted text, indexed."""
    async with runtime.db.session() as session:
        kb = await create_knowledge_base(session, workspace_id, name, runtime=runtime)
        source = await add_source(session, workspace_id, kb.id, runtime=runtime, kind="text", title=title, content=text.encode())
    await ingest_source(runtime, workspace_id, source.id)


def agent_id_from(location: str) -> str:
    found = re.search(r"/dashboard/agents/([0-9a-f]+)", location)
    assert found, location
    return found.group(1)


async def create_agent(client: DashboardClient, name: str, kind: str = "chat") -> str:
    created = await client.post("/dashboard/agents", {"name": name, "kind": kind})
    assert created.status_code == 303, created.text[:2000]
    return agent_id_from(created.headers["location"])


async def chat_turn(client: DashboardClient, agent_id: str, text: str, *, preview: str = "", timeout: float = 30) -> str:
    """Send ``text`` in the Test panel and poll as the page does until the turn is shown."""
    sent = await client.post(f"/dashboard/agents/{agent_id}/test", {"text": text, "session": "s1", "preview": preview}, headers={"HX-Request": "true"})
    assert sent.status_code == 200, sent.text[:2000]
    found = re.search(r'hx-get="([^"]+)"', sent.text)
    assert found, sent.text
    url = found.group(1).replace("&amp;", "&")
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        polled = await client.get(url, headers={"HX-Request": "true"})
        assert polled.status_code == 200, polled.text[:2000]
        again = re.search(r'hx-get="([^"]+)"', polled.text)
        if again is None:
            return polled.text
        url = again.group(1).replace("&amp;", "&")
        await asyncio.sleep(0.2)
    raise AssertionError(f"no turn after {timeout}s")


def builder_values(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "system_prompt": "You are the front desk.",
        "greeting": "Hi!",
        "fallback_message": "Sorry.",
        "model_settings.integration": "",
        "model_settings.model": "",
        "model_settings.temperature": "",
    }
    values.update(overrides)
    return values
