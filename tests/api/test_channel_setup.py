"""Setting a channel up at its provider through the admin API (as the dashboard does): the
account's senders, "configure for me", a test message — against the fake Twilio."""

from __future__ import annotations

from tests.api.conftest import ACCOUNT_SID, AGENT, AUTH_TOKEN, ApiEnv, error_of

NUMBER = "+14155550100"


async def _whatsapp_channel(env: ApiEnv) -> dict[str, object]:
    env.twilio.add_phone_number(ACCOUNT_SID, NUMBER, friendly_name="Front desk", whatsapp=True)
    await env.api.post("/agents", json=AGENT)
    connected = await env.api.post(
        "/integrations",
        json={"provider": "twilio", "name": "twilio-main", "public": {"account_sid": ACCOUNT_SID}, "secrets": {"auth_token": AUTH_TOKEN}},
    )
    assert connected.status_code == 201, connected.text
    created = await env.api.post(
        "/channels",
        json={"name": "whatsapp", "kind": "whatsapp", "agent": "assistant", "integration": "twilio-main", "config": {"sender": f"whatsapp:{NUMBER}"}},
    )
    assert created.status_code == 201, created.text
    channel: dict[str, object] = created.json()
    return channel


async def test_senders_configure_and_a_test_message(env: ApiEnv) -> None:
    channel = await _whatsapp_channel(env)
    senders = await env.api.get("/integrations/twilio-main/senders")
    assert senders.status_code == 200, senders.text
    listed = senders.json()
    assert listed["channel_kind"] == "whatsapp"
    assert any(s["value"].endswith(NUMBER) and s["label"].startswith(NUMBER) for s in listed["senders"]), listed

    configured = await env.api.post(f"/channels/{channel['id']}/configure")
    assert configured.status_code == 200, configured.text
    result = configured.json()
    # This server's base URL is local (Twilio could not call it): the URLs to set by hand, and why.
    assert result["configured"] is False and result["reason"]
    assert all(str(channel["id"]) in url for url in result["urls"].values())

    sent = await env.api.post(f"/channels/{channel['id']}/test-message", json={"to": "+15550001111", "text": "Hello from the API"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["to"] == "whatsapp:+15550001111" and sent.json()["provider_message_id"]
    [message] = [m for m in env.twilio.sent_messages if m["to"] == "whatsapp:+15550001111"]
    assert message["body"] == "Hello from the API" and message["from_"] == f"whatsapp:{NUMBER}"
    assert all(AUTH_TOKEN not in response.text for response in env.responses)


async def test_bad_input_and_refusals_say_what_to_do(env: ApiEnv) -> None:
    channel = await _whatsapp_channel(env)
    assert error_of(await env.api.post(f"/channels/{channel['id']}/test-message", json={}), 422)["field"] == "to"
    assert error_of(await env.api.post(f"/channels/{channel['id']}/test-message", json={"to": "+15550001111", "text": " "}), 422)["field"] == "text"
    widget = (await env.api.post("/channels", json={"name": "site", "kind": "widget", "agent": "assistant"})).json()
    assert "no set-up at a provider" in error_of(await env.api.post(f"/channels/{widget['id']}/configure"), 404)["message"]


async def test_another_workspaces_channels_and_integrations_are_not_found(env: ApiEnv) -> None:
    channel = await _whatsapp_channel(env)
    assert (await env.other.get("/integrations/twilio-main/senders")).status_code == 404
    assert (await env.other.post(f"/channels/{channel['id']}/configure")).status_code == 404
    assert (await env.other.post(f"/channels/{channel['id']}/test-message", json={"to": "+15550001111"})).status_code == 404
    assert env.twilio.sent_messages == []
