"""``/dashboard``: what the workspace has set up, and the next step to take.

The product's journey in order (an agent, its knowledge, a model or Twilio integration, a
channel), each with its count and a link; conversations that wait for a person on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from callable_agents.core.models import Agent, Channel, Conversation, Integration, KnowledgeBase, Source
from callable_agents.core.runtime import runtime_of
from callable_agents.core.store.users import SignedIn
from callable_agents.dashboard.guard import page
from callable_agents.dashboard.rendering import render


@dataclass(frozen=True)
class Step:
    title: str
    detail: str
    count: int
    path: str
    action: str


async def _count(session: AsyncSession, model: Any, workspace_id: str, *conditions: ColumnElement[bool]) -> int:
    query = select(func.count()).select_from(model).where(model.workspace_id == workspace_id, *conditions)
    return int(await session.scalar(query) or 0)


@page
async def overview(request: Request, viewer: SignedIn) -> Response:
    workspace_id = viewer.workspace_id
    async with runtime_of(request).db.sessions() as session:
        agents = await _count(session, Agent, workspace_id)
        knowledge_bases = await _count(session, KnowledgeBase, workspace_id)
        ready_sources = await _count(session, Source, workspace_id, Source.status == "ready")
        failed_sources = await _count(session, Source, workspace_id, Source.status == "failed")
        integrations = await _count(session, Integration, workspace_id)
        channels = await _count(session, Channel, workspace_id)
        waiting = await _count(session, Conversation, workspace_id, Conversation.status == "human")
    steps = [
        Step("Build a chat agent", "Its prompt, business info, model and tools.", agents, "/dashboard/agents", "Agents"),
        Step(
            "Add knowledge",
            f"{ready_sources} source(s) ready" + (f", {failed_sources} failed" if failed_sources else "") + ".",
            knowledge_bases,
            "/dashboard/knowledge",
            "Knowledge Base",
        ),
        Step("Connect Twilio or a model", "Integrations hold the credentials, encrypted.", integrations, "/dashboard/integrations", "Integrations"),
        Step("Open a channel", "WhatsApp, the website widget or a public chat page.", channels, "/dashboard/channels", "Channels"),
    ]
    return render(request, "overview.html", {"section": "", "steps": steps, "waiting": waiting})


def routes() -> list[BaseRoute]:
    return [Route("/", overview, methods=["GET"])]
