"""The workspace a server benchmark talks to: an agent answered by the (fake) OpenAI server."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.models import Agent, Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.workspaces import create_workspace

OPENAI_KEY = "sk-bench-0123456789abcdef"


async def bench_workspace(session: AsyncSession, runtime: Runtime, openai_url: str) -> Workspace:
    """A new workspace with an ``openai`` integration at ``openai_url`` and a chat agent ``assistant``."""
    workspace = await create_workspace(session, runtime.vault, f"Bench {secrets.token_hex(3)}")
    await connect_integration(
        session, runtime.vault, workspace, provider="openai", name="openai",
        public={"base_url": openai_url}, secrets={"api_key": OPENAI_KEY},
    )
    session.add(
        Agent(
            workspace_id=workspace.id, name="assistant", kind="chat",
            system_prompt="You are the assistant of Bella's Bakery.",
            model_settings={"integration": "openai", "model": "gpt-4o-mini", "max_retries": 0},
        )
    )
    await session.flush()
    return workspace
