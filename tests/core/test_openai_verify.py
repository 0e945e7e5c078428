"""Connecting an ``openai`` integration checks the key by listing the server's models (the
real ``openai`` client against the loopback FakeOpenAI), through ``connect_checked``: the one
path of the CLI, the admin API and the dashboard. A refused key, a wrong base URL and an
unreachable server are each said clearly, and nothing is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.errors import CallableError, InvalidInput
from callable_agents.core.models import Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.integrations import ProviderUnreachable, connect_checked, list_integrations
from callable_agents.core.store.workspaces import create_workspace
from callable_agents.testing.openai_server import FakeOpenAI
from tests.e2e.whatsapp_support import sqlite_settings
from tests.plugins.test_twilio_api import closed_port_url

KEY = "sk-test-openai-key-0123456789-LMNO"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY, models=["gpt-4o-mini", "text-embedding-3-small"]) as server:
        yield server


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Runtime, Workspace]]:
    runtime = await open_runtime(sqlite_settings(tmp_path))
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, "Bella's Bakery")
    try:
        yield runtime, workspace
    finally:
        await close_runtime(runtime)


async def connect(world: tuple[Runtime, Workspace], base_url: str, key: str = KEY) -> object:
    runtime, workspace = world
    return await connect_checked(
        runtime, workspace, provider="openai", name="llm", public={"base_url": base_url}, secrets={"api_key": key}
    )


async def stored(world: tuple[Runtime, Workspace]) -> list[str]:
    runtime, workspace = world
    async with runtime.db.sessions() as session:
        return [i.name for i in await list_integrations(session, workspace.id)]


async def test_a_working_key_is_stored_with_the_servers_models(world: tuple[Runtime, Workspace], fake: FakeOpenAI) -> None:
    connected = await connect(world, fake.base_url)
    assert connected.account == {  # type: ignore[attr-defined]
        "id": fake.base_url, "friendly_name": "2 models", "models": ["gpt-4o-mini", "text-embedding-3-small"]
    }
    assert [r.path for r in fake.requests] == ["/v1/models"]
    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in str(connected.view)  # type: ignore[attr-defined]
    assert await stored(world) == ["llm"]


async def test_a_refused_key_names_the_field_and_nothing_is_stored(world: tuple[Runtime, Workspace], fake: FakeOpenAI) -> None:
    with pytest.raises(InvalidInput) as info:
        await connect(world, fake.base_url, key="sk-wrong-key-typed-by-hand")
    assert info.value.field == "api_key"
    assert str(info.value) == f"api_key: the model server at {fake.base_url} refused the key (HTTP 401): check the API key"
    assert "sk-wrong" not in str(info.value)
    assert await stored(world) == []


async def test_a_base_url_without_the_api_path_is_explained(world: tuple[Runtime, Workspace], fake: FakeOpenAI) -> None:
    with pytest.raises(InvalidInput, match=r"check the base URL \(it usually ends in /v1\)") as info:
        await connect(world, fake.url)  # without /v1: the fake, like OpenAI, has no /models there
    assert info.value.field == "base_url" and "HTTP 404" in str(info.value)
    assert await stored(world) == []


async def test_an_unreachable_server_is_said_so(world: tuple[Runtime, Workspace]) -> None:
    url = closed_port_url() + "/v1"
    with pytest.raises(ProviderUnreachable, match=f"could not reach the model server at {url}") as info:
        await connect(world, url)
    assert isinstance(info.value, CallableError) and str(info.value).endswith("nothing was stored")
    assert await stored(world) == []
