"""Integrations: schemas, connect/list/get/remove, the safe view and workspace isolation.

Every test runs on SQLite and PostgreSQL (the ``runtime`` fixture is parametrised).
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from callable_agents.core.errors import Conflict, InvalidInput, NotFound, VaultError
from callable_agents.core.store.integrations import (
    default_providers,
    connect_integration,
    describe_integration,
    get_integration,
    list_integrations,
    read_secret,
    remove_integration,
)
from callable_agents.core.models import Agent, Channel, Integration, Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.workspaces import create_workspace

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
API_KEY_SID = "SK" + "fedcba9876543210" * 2
AUTH_TOKEN = "0123456789abcdef0123456789abWXYZ"
API_KEY_SECRET = "api-key-secret-value-QRST"
OPENAI_KEY = "sk-test-openai-key-0123456789-LMNO"

PROVIDERS = default_providers()  # the built-in plugins' providers and core's own


async def new_workspace(runtime: Runtime, slug: str) -> Workspace:
    async with runtime.db.session() as session:
        return await create_workspace(session, runtime.vault, slug.title(), slug)


async def connect(runtime: Runtime, workspace: Workspace, **kwargs: object) -> Integration:
    values: dict[str, object] = {
        "provider": "twilio",
        "name": "twilio-main",
        "public": {"account_sid": ACCOUNT_SID},
        "secrets": {"auth_token": AUTH_TOKEN},
    }
    values.update(kwargs)
    async with runtime.db.session() as session:
        return await connect_integration(session, runtime.vault, workspace, **values)  # type: ignore[arg-type]


async def secret_of(runtime: Runtime, workspace: Workspace, name: str, field: str) -> str:
    async with runtime.db.session() as session:
        integration = await get_integration(session, workspace.id, name)
        return await read_secret(session, runtime.vault, workspace, integration, field)


async def test_connect_list_get_read_and_describe(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    workspace = await new_workspace(runtime, "acme")
    with caplog.at_level(logging.DEBUG):
        created = await connect(
            runtime, workspace,
            public={"account_sid": ACCOUNT_SID, "api_key_sid": API_KEY_SID},
            secrets={"auth_token": AUTH_TOKEN, "api_key_secret": API_KEY_SECRET},
        )
        await connect(
            runtime, workspace, provider="openai", name="llm",
            public={"base_url": "http://127.0.0.1:9999/v1/"}, secrets={"api_key": OPENAI_KEY},
        )
        async with runtime.db.session() as session:
            rows = await list_integrations(session, workspace.id)
            assert [(i.provider, i.name) for i in rows] == [("openai", "llm"), ("twilio", "twilio-main")]
            assert [i.name for i in await list_integrations(session, workspace.id, provider="openai")] == ["llm"]
            by_id = await get_integration(session, workspace.id, created.id)
            assert by_id.name == "twilio-main"
            view = describe_integration(by_id)
            llm = describe_integration(await get_integration(session, workspace.id, "llm"))
        assert await secret_of(runtime, workspace, "twilio-main", "auth_token") == AUTH_TOKEN
        assert await secret_of(runtime, workspace, "twilio-main", "api_key_secret") == API_KEY_SECRET
        assert await secret_of(runtime, workspace, "llm", "api_key") == OPENAI_KEY
    assert view == {
        "id": created.id,
        "provider": "twilio",
        "name": "twilio-main",
        "account_sid": ACCOUNT_SID,
        "api_key_sid": API_KEY_SID,
        "has_auth_token": True,
        "auth_token_last4": "WXYZ",
        "has_api_key_secret": True,
        "api_key_secret_last4": "QRST",
        "created_at": view["created_at"],
        "updated_at": view["updated_at"],
    }
    assert view["created_at"] and view["updated_at"]
    assert llm["base_url"] == "http://127.0.0.1:9999/v1" and llm["organization"] is None
    assert llm["has_api_key"] is True and llm["api_key_last4"] == "LMNO"
    shown = str(view) + str(llm) + repr(created) + caplog.text
    for secret in (AUTH_TOKEN, API_KEY_SECRET, OPENAI_KEY):
        assert secret not in shown
    assert all(value.startswith("v1:") for value in created.secrets.values())


async def test_short_secrets_show_no_last4_and_optional_ones_show_absent(runtime: Runtime) -> None:
    workspace = await new_workspace(runtime, "acme")
    integration = await connect(runtime, workspace, secrets={"auth_token": "abc123"})
    view = describe_integration(integration)
    assert view["has_auth_token"] is True and view["auth_token_last4"] is None
    assert view["has_api_key_secret"] is False and view["api_key_secret_last4"] is None
    assert view["api_key_sid"] is None
    async with runtime.db.session() as session:
        stored = await get_integration(session, workspace.id, "twilio-main")
        with pytest.raises(NotFound, match="no api_key_secret set"):
            await read_secret(session, runtime.vault, workspace, stored, "api_key_secret")
        with pytest.raises(InvalidInput, match="field: twilio integrations have secrets auth_token, api_key_secret"):
            await read_secret(session, runtime.vault, workspace, stored, "password")


async def test_update_replaces_given_secrets_and_keeps_omitted_ones(runtime: Runtime) -> None:
    workspace = await new_workspace(runtime, "acme")
    first = await connect(
        runtime, workspace, public={"account_sid": ACCOUNT_SID, "api_key_sid": API_KEY_SID},
        secrets={"auth_token": AUTH_TOKEN, "api_key_secret": API_KEY_SECRET},
    )
    new_token = "ffffffffffffffffffffffffffff9999"
    updated = await connect(runtime, workspace, public={}, secrets={"auth_token": new_token})
    assert updated.id == first.id
    assert await secret_of(runtime, workspace, "twilio-main", "auth_token") == new_token
    assert await secret_of(runtime, workspace, "twilio-main", "api_key_secret") == API_KEY_SECRET
    view = describe_integration(updated)
    assert view["auth_token_last4"] == "9999" and view["api_key_secret_last4"] == "QRST"
    assert view["api_key_sid"] == API_KEY_SID  # omitted public fields are kept too
    # A public-only update needs no secrets; None clears an optional public field.
    updated = await connect(runtime, workspace, public={"api_key_sid": None}, secrets={})
    assert describe_integration(updated)["api_key_sid"] is None
    assert await secret_of(runtime, workspace, "twilio-main", "auth_token") == new_token
    async with runtime.db.session() as session:
        assert len(await list_integrations(session, workspace.id)) == 1


async def test_provider_of_an_existing_integration_cannot_change(runtime: Runtime) -> None:
    workspace = await new_workspace(runtime, "acme")
    await connect(runtime, workspace)
    with pytest.raises(Conflict, match="'twilio-main' already exists with provider 'twilio'"):
        await connect(runtime, workspace, provider="openai", public={}, secrets={"api_key": OPENAI_KEY})


BAD_INPUTS: list[tuple[dict[str, object], str]] = [
    ({"provider": "slack"}, rf"provider: expected one of {', '.join(sorted(PROVIDERS))}, got 'slack'"),
    ({"name": ""}, r"name: expected 1-100 letters"),
    ({"name": "has space"}, r"name: expected 1-100 letters"),
    ({"public": {}}, r"account_sid: required"),
    ({"public": {"account_sid": "AC123"}}, r"account_sid: expected 'AC' followed by 32 hex characters"),
    ({"public": {"account_sid": ACCOUNT_SID, "api_key_sid": "AK" + "0" * 32}}, r"api_key_sid: expected 'SK'"),
    ({"public": {"account_sid": ACCOUNT_SID, "region": "us1"}}, r"region: unknown field \(expected one of: account_sid, api_key_sid\)"),
    ({"public": {"account_sid": 12345}}, r"account_sid: expected a string"),
    ({"secrets": {}}, r"auth_token: required"),
    ({"secrets": {"auth_token": "   "}}, r"auth_token: expected a non-empty value"),
    ({"secrets": {"auth_token": "x" * 5000}}, r"auth_token: expected at most 4096 characters"),
    ({"secrets": {"auth_token": "line1\nline2-secret"}}, r"auth_token: expected printable characters"),
    ({"secrets": {"auth_token": AUTH_TOKEN, "password": "hunter2-secret"}}, r"password: unknown secret \(expected one of: auth_token, api_key_secret\)"),
    ({"provider": "openai", "public": {"base_url": "ftp://example.com"}, "secrets": {"api_key": OPENAI_KEY}}, r"base_url: expected an http:// or https:// URL"),
    ({"provider": "openai", "public": {"organization": "x" * 300}, "secrets": {"api_key": OPENAI_KEY}}, r"organization: expected 1-200 printable characters"),
    ({"provider": "openai", "public": {}, "secrets": {}}, r"api_key: required"),
]


async def test_bad_input_names_the_field_without_echoing_secrets(runtime: Runtime) -> None:
    # One database for all the cases (a fresh PostgreSQL database per case is slow).
    workspace = await new_workspace(runtime, "acme")
    for kwargs, expected in BAD_INPUTS:
        with pytest.raises(InvalidInput, match=expected) as caught:
            await connect(runtime, workspace, **kwargs)
        message = str(caught.value)
        for secret in ("line1", "hunter2", "x" * 50, OPENAI_KEY):
            assert secret not in message, kwargs
    async with runtime.db.session() as session:
        assert await list_integrations(session, workspace.id) == []


async def test_several_problems_are_reported_together(runtime: Runtime) -> None:
    workspace = await new_workspace(runtime, "acme")
    with pytest.raises(InvalidInput) as caught:
        await connect(runtime, workspace, public={"account_sid": "nope"}, secrets={"auth_token": ""})
    assert "account_sid: expected 'AC'" in str(caught.value) and "auth_token: expected a non-empty" in str(caught.value)
    assert "twilio integration 'twilio-main'" in str(caught.value)


async def test_workspaces_are_isolated(runtime: Runtime) -> None:
    alpha = await new_workspace(runtime, "alpha")
    beta = await new_workspace(runtime, "beta")
    in_alpha = await connect(runtime, alpha, secrets={"auth_token": AUTH_TOKEN})
    in_beta = await connect(runtime, beta, secrets={"auth_token": "beta-token-0000000000000000-BETA"})
    assert in_alpha.id != in_beta.id
    async with runtime.db.session() as session:
        assert [i.id for i in await list_integrations(session, alpha.id)] == [in_alpha.id]
        assert [i.id for i in await list_integrations(session, beta.id)] == [in_beta.id]
        with pytest.raises(NotFound, match="not found in this workspace"):
            await get_integration(session, alpha.id, in_beta.id)
        with pytest.raises(NotFound):
            await remove_integration(session, alpha.id, in_beta.id)
        beta_row = await get_integration(session, beta.id, in_beta.id)
        with pytest.raises(VaultError, match="does not belong to workspace 'alpha'"):
            await read_secret(session, runtime.vault, alpha, beta_row, "auth_token")
        # Copying beta's stored token into alpha's row does not decrypt there.
        alpha_row = await get_integration(session, alpha.id, in_alpha.id)
        alpha_row.secrets = {"auth_token": beta_row.secrets["auth_token"]}
        with pytest.raises(VaultError):
            await read_secret(session, runtime.vault, alpha, alpha_row, "auth_token")
        await session.rollback()
    assert await secret_of(runtime, alpha, "twilio-main", "auth_token") == AUTH_TOKEN
    assert (await secret_of(runtime, beta, "twilio-main", "auth_token")).endswith("BETA")


async def test_remove_refuses_while_a_channel_or_agent_uses_it(runtime: Runtime) -> None:
    workspace = await new_workspace(runtime, "acme")
    twilio = await connect(runtime, workspace)
    llm = await connect(runtime, workspace, provider="openai", name="llm", public={}, secrets={"api_key": OPENAI_KEY})
    async with runtime.db.session() as session:
        agent = Agent(workspace_id=workspace.id, name="helper", model_settings={"integration": "llm"})
        session.add(agent)
        await session.flush()
        session.add(Channel(workspace_id=workspace.id, kind="whatsapp", name="wa", agent_id=agent.id, integration_id=twilio.id))
    async with runtime.db.session() as session:
        with pytest.raises(Conflict, match="used by channel\\(s\\) wa"):
            await remove_integration(session, workspace.id, "twilio-main")
        with pytest.raises(Conflict, match="used by agent\\(s\\) helper"):
            await remove_integration(session, workspace.id, llm.id)
    async with runtime.db.session() as session:
        for channel in (await session.scalars(select(Channel))).all():
            await session.delete(channel)
        (await session.scalars(select(Agent))).one().model_settings = {}
    async with runtime.db.session() as session:
        removed = await remove_integration(session, workspace.id, "twilio-main")
        assert removed.id == twilio.id
        await remove_integration(session, workspace.id, "llm")
        with pytest.raises(NotFound, match="'twilio-main' not found"):
            await remove_integration(session, workspace.id, "twilio-main")
    async with runtime.db.session() as session:
        assert await list_integrations(session, workspace.id) == []


async def test_workspace_without_a_data_key_gets_one(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        bare = Workspace(name="Bare", slug="bare")
        session.add(bare)
    assert bare.wrapped_key is None
    await connect(runtime, bare)
    async with runtime.db.session() as session:
        stored = await session.get(Workspace, bare.id)
        assert stored is not None and stored.wrapped_key and stored.key_id == bare.key_id
        assert await read_secret(session, runtime.vault, stored, await get_integration(session, bare.id, "twilio-main"), "auth_token") == AUTH_TOKEN


def test_provider_schemas_list_secret_fields_in_prompt_order() -> None:
    assert PROVIDERS["twilio"].secret_fields == ("auth_token", "api_key_secret")
    assert PROVIDERS["twilio"].required_secrets == {"auth_token"}
    assert PROVIDERS["twilio"].public_fields == ("account_sid", "api_key_sid")
    assert PROVIDERS["openai"].secret_fields == ("api_key",)
    assert PROVIDERS["openai"].public_fields == ("base_url", "organization")
