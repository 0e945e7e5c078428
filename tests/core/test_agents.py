"""Agents and channels: validation naming the field, idempotent saves, references, isolation.

Data-access tests run on SQLite and PostgreSQL (``kit_runtime`` is built on the parametrised
``settings``). A test plugin (:class:`AgentTestKit`) registers a tool type and a channel type
with strict config schemas, through the same hooks a third-party package uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from callable_agents.core.store.agent_spec import SpecError, validate_agent_spec
from callable_agents.core.store.agents import (
    AgentSnapshot,
    create_or_update_agent,
    delete_agent,
    describe_agent,
    get_agent,
    list_agents,
)
from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.store.channels import (
    create_or_update_channel,
    delete_channel,
    get_channel,
    get_channel_by_id_unscoped,
    get_channel_by_slug_unscoped,
    list_channels,
)
from callable_agents.core.contracts.channels import ChannelCapabilities, ChannelType, OutboundMessage, SendResult
from callable_agents.core.config import Settings
from callable_agents.core.errors import Conflict, InvalidInput, NotFound
from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.llm import validate_model_settings
from callable_agents.core.models import Agent, KnowledgeBase, Workspace
from callable_agents.core.plugins import Plugins, load_plugins
from callable_agents.core.runtime import Runtime
from callable_agents.core.contracts.tools import ToolContext, ToolType
from callable_agents.core.store.workspaces import create_workspace

OPENAI_KEY = "sk-test-openai-key-0123456789-LMNO"
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "0123456789abcdef0123456789abWXYZ"


# --------------------------------------------------------------------------- the test plugin


class StampConfig(BaseModel):
    """A strict tool config: an http(s) URL, headers, a bounded number."""

    model_config = ConfigDict(extra="forbid")

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    retries: int = Field(default=2, ge=0, le=5)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("expected an http(s) URL")
        return url


class ChatTestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_origins: list[str] = Field(default_factory=list)
    theme: Literal["light", "dark"] = "light"


async def _send(runtime: Runtime, message: OutboundMessage) -> SendResult:
    return SendResult(provider_message_id=f"test-{message.message_id}")


class AgentTestKit:
    """Registers tool type ``stamp`` and channel type ``test_chat``."""

    @hookimpl
    def register_tools(self) -> list[ToolType]:
        return [ToolType(name="stamp", description="Stamp a form", config_schema=StampConfig, factory=self._tool)]

    @hookimpl
    def register_channels(self) -> list[ChannelType]:
        return [
            ChannelType(
                name="test_chat",
                description="A chat channel for tests",
                config_schema=ChatTestConfig,
                capabilities=ChannelCapabilities(),
                send=_send,
            )
        ]

    @staticmethod
    def _tool(context: ToolContext) -> object:
        return object()


def kit_plugins() -> Plugins:
    """The built-in plugins plus the test kit."""
    return load_plugins(autoload=False, extra=[("agent_test_kit", AgentTestKit())])


@pytest.fixture
async def kit_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(settings, plugins=kit_plugins())
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


async def new_workspace(runtime: Runtime, slug: str) -> Workspace:
    async with runtime.db.session() as session:
        return await create_workspace(session, runtime.vault, slug.title(), slug)


def spec(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "name": "assistant",
        "system_prompt": "You help customers of the shop.",
        "business_info": {"name": "The Shop", "hours": "Mon-Fri 9-17", "email": "hi@shop.example", "facts": ["Est. 1999"]},
        "tools": [{"type": "stamp", "name": "stamp_form", "config": {"url": "https://forms.example/stamp"}}],
        "greeting": "Hello!",
        "fallback_message": "Sorry, I don't know.",
    }
    values.update(overrides)
    return values


def problems_of(error: SpecError) -> dict[str, str]:
    return {str(problem).split(": ", 1)[0]: problem.message for problem in error.problems}


# --------------------------------------------------------------------------- validation


def test_validation_errors_name_every_field_at_fault() -> None:
    plugins = kit_plugins()
    bad = spec(
        name="bad name!",
        kind="robot",
        colour="blue",
        business_info={"email": "not-an-email", "website": "ftp://x", "opening": "9-5"},
        model_settings={"temperature": 3, "max_tool_rounds": 11},
    )
    with pytest.raises(SpecError) as caught:
        validate_agent_spec(bad, plugins)
    problems = problems_of(caught.value)
    assert problems["name"].startswith("expected 1-100 letters")
    assert problems["kind"] == "expected 'chat' or 'voice'"
    assert problems["colour"].startswith("unknown field (expected one of: name, kind, system_prompt")
    assert problems["business_info.email"] == "expected an email address like hello@example.com"
    assert problems["business_info.website"].startswith("expected an http:// or https:// URL")
    assert problems["business_info.opening"].startswith("unknown field (expected one of: name, description, hours")
    assert problems["model_settings.temperature"] == "expected less than or equal to 2"
    assert problems["model_settings.max_tool_rounds"] == "expected less than or equal to 10"
    assert isinstance(caught.value, InvalidInput)  # the API answers 422, the CLI prints one line


def test_model_settings_rules_match_the_chat_model_factory() -> None:
    plugins = kit_plugins()
    with pytest.raises(SpecError) as caught:
        validate_agent_spec(spec(model_settings={"integration": "openai-main"}), plugins)
    assert problems_of(caught.value) == {
        "model_settings.model": "expected a model name (e.g. 'gpt-4o-mini') when an integration is set"
    }
    with pytest.raises(SpecError, match=r"model_settings.fallback_model: expected a model other than model"):
        validate_agent_spec(spec(model_settings={"model": "gpt-4o", "fallback_model": "gpt-4o"}), plugins)
    offline = validate_agent_spec(spec(model_settings={"model": "offline"}), plugins)
    assert offline.model_settings.stored() == {"max_tool_rounds": 4}
    online = validate_agent_spec(
        spec(model_settings={"model": "gpt-4o-mini", "temperature": 0.3, "timeout": 20, "max_tool_rounds": 2}), plugins
    )
    stored = online.model_settings.stored()
    assert stored == {"model": "gpt-4o-mini", "temperature": 0.3, "timeout": 20, "max_tool_rounds": 2}
    llm_part = {key: value for key, value in stored.items() if key != "max_tool_rounds"}
    assert validate_model_settings(llm_part) == llm_part


def test_tool_type_must_be_registered_and_config_passes_its_schema() -> None:
    plugins = kit_plugins()
    bad_tools = [
        {"type": "stamp", "name": "ok_tool", "config": {"url": "https://a.example"}},
        {"type": "fax", "name": "fax_it", "config": {}},
        {"type": "stamp", "name": "bad name", "config": {"url": "gopher://old", "retries": 9, "colour": 1}},
        {"type": "stamp", "name": "ok_tool", "config": {}},
    ]
    with pytest.raises(SpecError) as caught:
        validate_agent_spec(spec(tools=bad_tools), plugins)
    problems = problems_of(caught.value)
    assert problems["tools[1].type"].startswith("unknown tool type 'fax'; loaded: ")
    assert "stamp" in problems["tools[1].type"]
    assert problems["tools[2].name"].startswith("expected 1-64 letters, digits, '_' or '-'")
    assert problems["tools[2].config.url"] == "expected an http(s) URL"
    assert problems["tools[2].config.retries"] == "expected less than or equal to 5"
    assert problems["tools[2].config.colour"] == "unknown field (expected one of: url, headers, retries)"
    assert problems["tools[3].name"] == "duplicate tool name 'ok_tool' (also tools[0])"
    assert problems["tools[3].config.url"] == "required"

    valid = validate_agent_spec(spec(), plugins)
    # Stored configs are the schema's normalised dump: defaults filled in.
    assert valid.tools[0].config == {"url": "https://forms.example/stamp", "headers": {}, "retries": 2}


# --------------------------------------------------------------------------- data access


async def test_saving_the_same_agent_twice_changes_nothing(kit_runtime: Runtime) -> None:
    workspace = await new_workspace(kit_runtime, "shop")
    async with kit_runtime.db.session() as session:
        created, changed = await create_or_update_agent(session, kit_runtime, workspace.id, spec())
    assert changed
    async with kit_runtime.db.session() as session:
        again, changed = await create_or_update_agent(session, kit_runtime, workspace.id, spec())
    assert not changed
    assert again.id == created.id and again.updated_at == created.updated_at

    async with kit_runtime.db.session() as session:
        updated, changed = await create_or_update_agent(session, kit_runtime, workspace.id, spec(greeting="Hi there!"))
    assert changed and updated.id == created.id and updated.greeting == "Hi there!"
    assert updated.updated_at > created.updated_at

    async with kit_runtime.db.session() as session:
        stored = await get_agent(session, workspace.id, "assistant")
    assert stored.tools == [
        {"type": "stamp", "name": "stamp_form", "config": {"url": "https://forms.example/stamp", "headers": {}, "retries": 2}}
    ]
    assert stored.business_info["facts"] == ["Est. 1999"]
    assert stored.model_settings == {"max_tool_rounds": 4}


async def test_model_integration_must_be_an_openai_integration_of_the_workspace(kit_runtime: Runtime) -> None:
    workspace = await new_workspace(kit_runtime, "shop")
    online = spec(model_settings={"integration": "openai-main", "model": "gpt-4o-mini"})
    async with kit_runtime.db.session() as session:
        with pytest.raises(SpecError) as caught:
            await create_or_update_agent(session, kit_runtime, workspace.id, online)
    message = problems_of(caught.value)["model_settings.integration"]
    assert "no integration named 'openai-main'" in message
    assert "callable integrations connect openai --name openai-main" in message

    async with kit_runtime.db.session() as session:
        await connect_integration(
            session, kit_runtime.vault, workspace, provider="twilio", name="openai-main",
            public={"account_sid": TWILIO_SID}, secrets={"auth_token": TWILIO_TOKEN},
        )
    async with kit_runtime.db.session() as session:
        with pytest.raises(SpecError, match=r"integration 'openai-main' is a twilio integration; expected an openai one"):
            await create_or_update_agent(session, kit_runtime, workspace.id, online)

    other = await new_workspace(kit_runtime, "other")
    async with kit_runtime.db.session() as session:
        await connect_integration(
            session, kit_runtime.vault, other, provider="openai", name="openai-other", public={}, secrets={"api_key": OPENAI_KEY}
        )
        await connect_integration(
            session, kit_runtime.vault, workspace, provider="openai", name="openai-ok", public={}, secrets={"api_key": OPENAI_KEY}
        )
    async with kit_runtime.db.session() as session:
        # Another workspace's integration is invisible here.
        with pytest.raises(SpecError, match=r"no integration named 'openai-other'"):
            await create_or_update_agent(
                session, kit_runtime, workspace.id, spec(model_settings={"integration": "openai-other", "model": "gpt-4o"})
            )
        agent, _ = await create_or_update_agent(
            session, kit_runtime, workspace.id, spec(model_settings={"integration": "openai-ok", "model": "gpt-4o"})
        )
    view = describe_agent(agent)
    assert view["model_settings"] == {"integration": "openai-ok", "model": "gpt-4o", "max_tool_rounds": 4}
    assert OPENAI_KEY not in repr(view)


async def test_knowledge_bases_are_referenced_by_name_and_stored_as_ids(kit_runtime: Runtime) -> None:
    workspace = await new_workspace(kit_runtime, "shop")
    other = await new_workspace(kit_runtime, "other")
    async with kit_runtime.db.session() as session:
        faq = KnowledgeBase(workspace_id=workspace.id, name="faq", embedding_model="wordllama")
        foreign = KnowledgeBase(workspace_id=other.id, name="menu", embedding_model="wordllama")
        session.add_all([faq, foreign])
    async with kit_runtime.db.session() as session:
        with pytest.raises(SpecError) as caught:
            await create_or_update_agent(session, kit_runtime, workspace.id, spec(knowledge_bases=["faq", "menu"]))
    assert problems_of(caught.value) == {
        "knowledge_bases[1]": "no knowledge base named 'menu' in this workspace (create it first, or declare it "
        "under knowledge_bases in an apply file)"
    }
    async with kit_runtime.db.session() as session:
        agent, _ = await create_or_update_agent(session, kit_runtime, workspace.id, spec(knowledge_bases=["faq"]))
    assert agent.knowledge_base_ids == [faq.id]
    snapshot = AgentSnapshot.of(agent)
    assert snapshot.knowledge_base_ids == (faq.id,)
    assert snapshot.tools[0].name == "stamp_form"
    assert snapshot.tools[0].validated_config(kit_runtime) == StampConfig(url="https://forms.example/stamp")
    assert snapshot.max_tool_rounds == 4 and snapshot.model_settings["max_tool_rounds"] == 4
    assert snapshot.offline
    assert snapshot.business_info["name"] == "The Shop"
    with pytest.raises(Exception):
        snapshot.name = "changed"  # type: ignore[misc]


async def test_voice_agent_is_refused_on_a_channel(kit_runtime: Runtime) -> None:
    workspace = await new_workspace(kit_runtime, "shop")
    async with kit_runtime.db.session() as session:
        await create_or_update_agent(session, kit_runtime, workspace.id, spec(name="caller", kind="voice"))
    async with kit_runtime.db.session() as session:
        with pytest.raises(SpecError) as caught:
            await create_or_update_channel(session, kit_runtime, workspace.id, name="web", kind="test_chat", agent="caller")
    assert problems_of(caught.value) == {
        "agent": "'caller' is a voice agent and cannot answer on a test_chat channel; attach a chat agent"
    }
    async with kit_runtime.db.session() as session:
        assert await list_channels(session, workspace.id) == []


async def test_channel_kind_and_config_are_checked_and_saves_are_idempotent(kit_runtime: Runtime) -> None:
    workspace = await new_workspace(kit_runtime, "shop")
    async with kit_runtime.db.session() as session:
        await create_or_update_agent(session, kit_runtime, workspace.id, spec())
    async with kit_runtime.db.session() as session:
        with pytest.raises(SpecError, match=r"kind: unknown channel type 'carrier_pigeon'; loaded: .*test_chat"):
            await create_or_update_channel(session, kit_runtime, workspace.id, name="web", kind="carrier_pigeon", agent="assistant")
        with pytest.raises(SpecError) as caught:
            await create_or_update_channel(
                session, kit_runtime, workspace.id, name="web", kind="test_chat", agent="assistant",
                config={"theme": "neon", "size": 3},
            )
        assert problems_of(caught.value) == {
            "config.theme": "expected 'light' or 'dark'",
            "config.size": "unknown field (expected one of: allowed_origins, theme)",
        }
        with pytest.raises(SpecError, match=r"agent: no agent named 'nobody' in this workspace"):
            await create_or_update_channel(session, kit_runtime, workspace.id, name="web", kind="test_chat", agent="nobody")
        with pytest.raises(SpecError, match=r"integration: no integration named 'twilio-main'.*callable integrations connect"):
            await create_or_update_channel(
                session, kit_runtime, workspace.id, name="web", kind="test_chat", agent="assistant", integration="twilio-main"
            )
        with pytest.raises(SpecError, match=r"slug: expected lowercase letters, digits and dashes"):
            await create_or_update_channel(
                session, kit_runtime, workspace.id, name="web", kind="test_chat", agent="assistant", slug="Bella's"
            )

    options = {"config": {"allowed_origins": ["http://localhost:*"]}, "slug": "shop-chat"}
    async with kit_runtime.db.session() as session:
        channel, changed = await create_or_update_channel(
            session, kit_runtime, workspace.id, name="web", kind="test_chat", agent="assistant", **options
        )
    assert changed and channel.config == {"allowed_origins": ["http://localhost:*"], "theme": "light"}
    async with kit_runtime.db.session() as session:
        again, changed = await create_or_update_channel(
            session, kit_runtime, workspace.id, name="web", kind="test_chat", agent="assistant", **options
        )
    assert not changed and again.updated_at == channel.updated_at

    async with kit_runtime.db.session() as session:
        found = await get_channel_by_id_unscoped(session, channel.id)
        by_slug = await get_channel_by_slug_unscoped(session, "shop-chat")
        assert await get_channel_by_id_unscoped(session, "0" * 32) is None
    assert found is not None and found.workspace_id == workspace.id
    assert by_slug is not None and by_slug.id == channel.id


async def test_public_slugs_are_unique_across_workspaces(kit_runtime: Runtime) -> None:
    first = await new_workspace(kit_runtime, "first")
    second = await new_workspace(kit_runtime, "second")
    for workspace in (first, second):
        async with kit_runtime.db.session() as session:
            await create_or_update_agent(session, kit_runtime, workspace.id, spec())
    async with kit_runtime.db.session() as session:
        await create_or_update_channel(session, kit_runtime, first.id, name="page", kind="test_chat", agent="assistant", slug="bella")
    async with kit_runtime.db.session() as session:
        with pytest.raises(Conflict, match=r"slug: 'bella' is already used by another channel; pick another slug"):
            await create_or_update_channel(
                session, kit_runtime, second.id, name="page", kind="test_chat", agent="assistant", slug="bella"
            )


async def test_functions_for_one_workspace_never_see_another(kit_runtime: Runtime) -> None:
    shop = await new_workspace(kit_runtime, "shop")
    rival = await new_workspace(kit_runtime, "rival")
    rows = {}
    for workspace in (shop, rival):
        async with kit_runtime.db.session() as session:
            agent, _ = await create_or_update_agent(
                session, kit_runtime, workspace.id, spec(system_prompt=f"prompt of {workspace.slug}")
            )
            channel, _ = await create_or_update_channel(
                session, kit_runtime, workspace.id, name="web", kind="test_chat", agent="assistant"
            )
            rows[workspace.slug] = (agent, channel)
    rival_agent, rival_channel = rows["rival"]
    async with kit_runtime.db.session() as session:
        assert [a.system_prompt for a in await list_agents(session, shop.id)] == ["prompt of shop"]
        assert (await get_agent(session, shop.id, "assistant")).system_prompt == "prompt of shop"
        with pytest.raises(NotFound, match=r"agent '[0-9a-f]{32}' not found in this workspace"):
            await get_agent(session, shop.id, rival_agent.id)
        assert [c.id for c in await list_channels(session, shop.id)] == [rows["shop"][1].id]
        with pytest.raises(NotFound):
            await get_channel(session, shop.id, rival_channel.id)
        with pytest.raises(NotFound):
            await delete_channel(session, shop.id, rival_channel.id)
        with pytest.raises(NotFound):
            await delete_agent(session, shop.id, rival_agent.id)
    async with kit_runtime.db.session() as session:
        assert (await get_agent(session, rival.id, rival_agent.id)).system_prompt == "prompt of rival"


async def test_an_agent_in_use_by_a_channel_cannot_be_deleted(kit_runtime: Runtime) -> None:
    workspace = await new_workspace(kit_runtime, "shop")
    async with kit_runtime.db.session() as session:
        await create_or_update_agent(session, kit_runtime, workspace.id, spec())
        await create_or_update_channel(session, kit_runtime, workspace.id, name="web", kind="test_chat", agent="assistant")
    async with kit_runtime.db.session() as session:
        with pytest.raises(Conflict, match=r"agent 'assistant' is used by channel\(s\) web"):
            await delete_agent(session, workspace.id, "assistant")
    async with kit_runtime.db.session() as session:
        await delete_channel(session, workspace.id, "web")
        await delete_agent(session, workspace.id, "assistant")
    async with kit_runtime.db.session() as session:
        assert (await session.scalars(select(Agent).where(Agent.workspace_id == workspace.id))).all() == []
