"""``GET /api/v1/catalog``: the loaded plugins' types with the JSON Schemas forms are built from."""

from __future__ import annotations

from tests.api.conftest import ApiEnv, error_of


async def test_the_catalog_lists_every_type_with_its_settings_schema(env: ApiEnv) -> None:
    assert error_of(await env.anonymous.get("/catalog"), 401)
    catalog = (await env.api.get("/catalog")).json()
    tools = {tool["type"]: tool for tool in catalog["tools"]}
    assert set(tools) == set(env.runtime.plugins.tools.types)
    assert "customer_message" in tools["handoff"]["config_schema"]["properties"]
    channels = {channel["kind"]: channel for channel in catalog["channels"]}
    assert set(channels) == set(env.runtime.plugins.channels.types)
    assert "sender" in channels["whatsapp"]["config_schema"]["properties"]
    providers = {provider["provider"]: provider for provider in catalog["providers"]}
    twilio = providers["twilio"]
    assert "auth_token" in twilio["secret_fields"] and "auth_token" in twilio["required_secrets"] and twilio["checked"]
    assert "account_sid" in twilio["public_schema"]["properties"]
    assert "auth_token" not in twilio["public_schema"]["properties"]
    sources = {source["kind"]: source for source in catalog["sources"]}
    assert {"text", "file", "url"} <= set(sources)
    assert {"mode", "max_pages", "max_depth"} <= set(sources["url"]["options_schema"]["properties"])
