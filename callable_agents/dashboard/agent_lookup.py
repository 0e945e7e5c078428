"""An agent of the signed-in viewer's workspace, by the id in the URL (another workspace's id: 404)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.core.errors import NotFound
from callable_agents.core.models import Agent


async def agent_in_workspace(session: AsyncSession, workspace_id: str, agent_id: str) -> Agent:
    """The agent with this id in ``workspace_id``; any other id (another workspace's too) is a 404."""
    agent = await session.scalar(select(Agent).where(Agent.id == agent_id, Agent.workspace_id == workspace_id))
    if agent is None:
        raise NotFound("agent not found in this workspace")
    return agent
