"""What a test puts in the database before it talks to an agent: a workspace, an agent with
its tools and their config, and a chat model that is the loopback fake OpenAI server.

Everything is created through the service layer the CLI, the admin API and ``callable apply``
use, so an agent spec a test writes is validated as a person's would be (a tool config its
schema refuses raises :class:`~callable_agents.core.store.agent_spec.SpecError` naming the field).
Tests get frozen references (:class:`WorkspaceRef`, :class:`AgentRef`), not database rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime
    from callable_agents.testing.openai_server import FakeOpenAI

FAKE_OPENAI_INTEGRATION = "fake-openai"
FAKE_OPENAI_KEY = "sk-callable-testing-0000"
FAKE_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_AGENT_NAME = "assistant"
DEFAULT_SYSTEM_PROMPT = "You are the assistant of the business. Answer briefly."


@dataclass(frozen=True)
class WorkspaceRef:
    id: str
    slug: str
    name: str


@dataclass(frozen=True)
class AgentRef:
    id: str
    workspace_id: str
    name: str


async def create_test_workspace(runtime: Runtime, name: str = "Test Business", slug: str | None = None) -> WorkspaceRef:
    """A new workspace (with its vault data key), as ``callable workspace create`` makes it."""
    from callable_agents.core.store.workspaces import create_workspace

    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, name, slug)
        return WorkspaceRef(id=workspace.id, slug=workspace.slug, name=workspace.name)


async def connect_fake_openai(
    runtime: Runtime,
    workspace: WorkspaceRef,
    fake: FakeOpenAI,
    *,
    model: str = FAKE_OPENAI_MODEL,
    integration: str = FAKE_OPENAI_INTEGRATION,
    api_key: str = FAKE_OPENAI_KEY,
    **model_settings: Any,
) -> dict[str, Any]:
    """Connect ``fake`` as the workspace's ``openai`` integration and return the agent
    ``model_settings`` that use it: the real ``langchain-openai`` client talks to the fake.

    Give ``fake`` the same ``api_key`` (``FakeOpenAI(api_key=FAKE_OPENAI_KEY)``) to check the
    key travels. The settings retry nothing and time out after 10 s, so a test whose script
    runs out fails quickly; ``model_settings`` overrides them (``max_tool_rounds=2``, ...).
    """
    from callable_agents.core.models import Workspace
    from callable_agents.core.store.integrations import connect_integration

    async with runtime.db.session() as session:
        row = await session.get(Workspace, workspace.id)
        if row is None:
            raise LookupError(f"workspace {workspace.id!r} not found: create it with create_test_workspace first")
        await connect_integration(
            session, runtime.vault, row, provider="openai", name=integration,
            public={"base_url": fake.base_url}, secrets={"api_key": api_key},
        )
    return {"integration": integration, "model": model, "max_retries": 0, "timeout": 10, **model_settings}


async def create_test_agent(
    runtime: Runtime,
    workspace: WorkspaceRef,
    spec: Mapping[str, Any] | None = None,
    **fields: Any,
) -> AgentRef:
    """Create (or update) a chat agent from an agent spec, as ``callable apply`` would.

    ``spec`` and ``fields`` are the keys of an agent in a workspace file: ``name`` (default
    ``assistant``), ``system_prompt``, ``business_info``, ``model_settings`` (e.g. from
    :func:`connect_fake_openai`; none means offline mode), ``tools`` (a list of
    ``{"type": ..., "name": ..., "config": {...}}``), ``knowledge_bases``, ``fallback_message``.
    """
    from callable_agents.core.store.agents import create_or_update_agent

    values: dict[str, Any] = {"name": DEFAULT_AGENT_NAME, "system_prompt": DEFAULT_SYSTEM_PROMPT}
    values.update(spec or {})
    values.update(fields)
    async with runtime.db.session() as session:
        agent, _changed = await create_or_update_agent(session, runtime, workspace.id, values)
        return AgentRef(id=agent.id, workspace_id=agent.workspace_id, name=agent.name)
