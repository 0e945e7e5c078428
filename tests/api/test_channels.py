"""Channels through the admin API: chat agents only, configs checked by their channel type,
public addresses in every view."""

from __future__ import annotations

from tests.api.conftest import ACCOUNT_SID, AGENT, AUTH_TOKEN, ApiEnv, error_of


async def test_create_read_change_and_delete(env: ApiEnv) -> None:
    await env.api.post("/agents", json=AGENT)
    created = await env.api.post(
        "/channels", json={"name": "site", "kind": "widget", "agent": "assistant", "config": {"appearance": {"title": "Ask Acme"}}}
    )
    assert created.status_code == 201, created.text
    channel = created.json()
    assert (channel["kind"], channel["agent"], channel["config"]["appearance"]["title"]) == ("widget", "assistant", "Ask Acme")
    assert any(channel["id"] in str(value) for key, value in channel.items() if key not in ("id",))  # its addresses
    assert (await env.api.get(f"/channels/{channel['id']}")).json() == channel
    assert [c["name"] for c in (await env.api.get("/channels", params={"kind": "widget"})).json()["channels"]] == ["site"]
    assert (await env.api.get("/channels", params={"kind": "page"})).json()["channels"] == []
    assert error_of(await env.api.get("/channels", params={"kind": "pigeon"}), 422)["field"] == "kind"

    changed = await env.api.patch("/channels/site", json={"name": "website", "enabled": False})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["id"], changed.json()["name"], changed.json()["enabled"]) == (channel["id"], "website", False)
    assert changed.json()["config"]["appearance"]["title"] == "Ask Acme"

    page = await env.api.post("/channels", json={"name": "page", "kind": "page", "agent": "assistant", "slug": "acme"})
    assert page.status_code == 201, page.text
    taken = await env.api.post("/channels", json={"name": "page2", "kind": "page", "agent": "assistant", "slug": "acme"})
    assert error_of(taken, 409)["message"].startswith("slug:")
    assert error_of(await env.api.patch("/channels/page", json={"kind": "widget"}), 409)["message"].startswith("kind:")

    assert (await env.api.delete("/channels/website")).status_code == 204
    assert (await env.api.get(f"/channels/{channel['id']}")).status_code == 404


async def test_a_voice_agent_is_refused_with_the_reason(env: ApiEnv) -> None:
    await env.api.post("/agents", json=AGENT)
    await env.api.post("/agents", json={**AGENT, "name": "caller", "kind": "voice"})
    refused = error_of(await env.api.post("/channels", json={"name": "site", "kind": "widget", "agent": "caller"}), 422)
    assert refused["field"] == "agent"
    assert refused["message"] == "agent: 'caller' is a voice agent and cannot answer on a widget channel; attach a chat agent"
    await env.api.post("/channels", json={"name": "site", "kind": "widget", "agent": "assistant"})
    moved = error_of(await env.api.patch("/channels/site", json={"agent": "caller"}), 422)
    assert moved["field"] == "agent" and "voice agent" in moved["message"]
    assert (await env.api.get("/channels/site")).json()["agent"] == "assistant"


async def test_bad_bodies_name_the_field(env: ApiEnv) -> None:
    await env.api.post("/agents", json=AGENT)
    cases = {
        "kind": {"name": "x", "kind": "pigeon", "agent": "assistant"},
        "agent": {"name": "x", "kind": "widget", "agent": "nobody"},
        "name": {"name": "no spaces allowed", "kind": "widget", "agent": "assistant"},
        "integration": {"name": "x", "kind": "whatsapp", "agent": "assistant", "integration": "twilio-main",
                        "config": {"sender": "whatsapp:+14155238886"}},
        "config.sender": {"name": "x", "kind": "whatsapp", "agent": "assistant", "config": {"sender": "not a number"}},
        "enabled": {"name": "x", "kind": "widget", "agent": "assistant", "enabled": "yes please"},
    }
    for field, body in cases.items():
        assert error_of(await env.api.post("/channels", json=body), 422)["field"] == field, field
    assert (await env.api.get("/channels")).json()["channels"] == []


async def test_a_whatsapp_channel_on_a_connected_twilio_account(env: ApiEnv) -> None:
    await env.api.post("/agents", json=AGENT)
    connected = await env.api.post(
        "/integrations",
        json={"provider": "twilio", "name": "twilio-main", "public": {"account_sid": ACCOUNT_SID},
              "secrets": {"auth_token": AUTH_TOKEN}},
    )
    assert connected.status_code == 201, connected.text
    created = await env.api.post(
        "/channels",
        json={"name": "whatsapp", "kind": "whatsapp", "agent": "assistant", "integration": "twilio-main",
              "config": {"sender": "whatsapp:+14155238886"}},
    )
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["integration"] == "twilio-main"
    assert view["id"] in view["twilio_inbound_url"] and view["id"] in view["twilio_status_callback_url"]  # to paste
    in_use = error_of(await env.api.delete("/integrations/twilio-main"), 409)
    assert "whatsapp" in in_use["message"]


async def test_another_workspaces_channels_are_not_found(env: ApiEnv) -> None:
    await env.other.post("/agents", json=AGENT)
    channel = (await env.other.post("/channels", json={"name": "site", "kind": "widget", "agent": "assistant"})).json()
    await env.api.post("/agents", json={**AGENT, "name": "mine"})
    for reference in (channel["id"], channel["name"]):
        assert (await env.api.get(f"/channels/{reference}")).status_code == 404
        assert (await env.api.patch(f"/channels/{reference}", json={"agent": "mine"})).status_code == 404
        assert (await env.api.delete(f"/channels/{reference}")).status_code == 404
    # Nor can a channel of mine name the other workspace's agent.
    foreign_agent = await env.api.post("/channels", json={"name": "mine", "kind": "widget", "agent": "assistant"})
    assert error_of(foreign_agent, 422)["field"] == "agent"
    assert (await env.other.get(f"/channels/{channel['id']}")).json()["agent"] == "assistant"


async def test_a_whatsapp_channels_templates_configured_first_then_the_accounts_approved(env: ApiEnv) -> None:
    await env.api.post("/agents", json=AGENT)
    await env.api.post(
        "/integrations",
        json={"provider": "twilio", "name": "twilio-main", "public": {"account_sid": ACCOUNT_SID}, "secrets": {"auth_token": AUTH_TOKEN}},
    )
    english = env.twilio.add_content(
        ACCOUNT_SID, "order_ready", {"twilio/text": {"body": "Hi {{1}}, order {{2}} is ready"}},
        variables={"1": "Ana", "2": "A-17"}, approval=("order_ready", "UTILITY", "approved"),
    )
    welcome = env.twilio.add_content(ACCOUNT_SID, "welcome", {"twilio/text": {"body": "Welcome back"}}, language="es",
                                     approval=("welcome", "MARKETING", "approved"))
    env.twilio.add_content(ACCOUNT_SID, "promo", {"twilio/text": {"body": "Sale"}}, approval=("promo", "MARKETING", "rejected"))
    created = await env.api.post(
        "/channels",
        json={"name": "whatsapp", "kind": "whatsapp", "agent": "assistant", "integration": "twilio-main",
              "config": {"sender": "whatsapp:+14155238886", "template": {"name": "welcome", "language": "es"}}},
    )
    assert created.status_code == 201, created.text
    listed = await env.api.get("/channels/whatsapp/templates")
    assert listed.status_code == 200, listed.text
    templates = listed.json()["templates"]
    assert [(t["name"], t["language"], t["category"], t["status"], t["configured"]) for t in templates] == [
        ("welcome", "es", "MARKETING", "approved", True),  # the channel's own first, once
        ("order_ready", "en", "UTILITY", "approved", False),
    ]
    assert templates[1]["id"] == english and templates[1]["variables"] == {"1": "Ana", "2": "A-17"}
    assert welcome not in [t["id"] for t in templates[1:]]
    assert (await env.other.get(f"/channels/{created.json()['id']}/templates")).status_code == 404  # another workspace's id
    assert AUTH_TOKEN not in listed.text

    widget = await env.api.post("/channels", json={"name": "site", "kind": "widget", "agent": "assistant", "config": {}})
    assert widget.status_code == 201, widget.text
    assert (await env.api.get("/channels/site/templates")).json() == {"templates": []}  # a kind without templates


async def test_channel_templates_say_when_twilio_cannot_be_asked(env: ApiEnv) -> None:
    await env.api.post("/agents", json=AGENT)
    await env.api.post(
        "/integrations",
        json={"provider": "twilio", "name": "twilio-main", "public": {"account_sid": ACCOUNT_SID}, "secrets": {"auth_token": AUTH_TOKEN}},
    )
    await env.api.post(
        "/channels",
        json={"name": "whatsapp", "kind": "whatsapp", "agent": "assistant", "integration": "twilio-main",
              "config": {"sender": "whatsapp:+14155238886"}},
    )
    env.twilio.fail_next(status=503, scope="content")
    failed = error_of(await env.api.get("/channels/whatsapp/templates"), 502)
    assert failed["message"].startswith("could not list the Twilio account's approved templates")


async def test_takeover_and_return_notices_are_set_checked_and_used(env: ApiEnv) -> None:
    from sqlalchemy import select

    from callable_agents.core.conversation import people
    from callable_agents.core.models import Channel, Message
    from tests.core.pipeline_helpers import say

    await env.api.post("/agents", json=AGENT)
    created = await env.api.post("/channels", json={"name": "site", "kind": "widget", "agent": "assistant", "config": {}})
    assert (created.json()["takeover_notice"], created.json()["return_notice"]) == (None, None)  # the defaults
    changed = await env.api.patch("/channels/site", json={"takeover_notice": "  Hi, {name} here from Acme.  ", "return_notice": ""})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["takeover_notice"], changed.json()["return_notice"]) == ("Hi, {name} here from Acme.", "")
    assert (await env.api.get("/channels/site")).json()["takeover_notice"] == "Hi, {name} here from Acme."

    unknown = error_of(await env.api.patch("/channels/site", json={"takeover_notice": "Hi {customer}"}), 422)
    assert unknown["field"] == "takeover_notice" and "unknown placeholder {customer}" in unknown["message"]
    long = error_of(await env.api.patch("/channels/site", json={"return_notice": "x" * 501}), 422)
    assert long["field"] == "return_notice" and "at most 500 characters, got 501" in long["message"]
    wrong_type = error_of(await env.api.patch("/channels/site", json={"return_notice": 5}), 422)
    assert wrong_type["field"] == "return_notice"
    assert (await env.api.get("/channels/site")).json()["return_notice"] == ""  # nothing half-done
    assert (await env.other.patch(f"/channels/{created.json()['id']}", json={"return_notice": "x"})).status_code == 404

    async with env.runtime.db.sessions() as session:
        channel = await session.scalar(select(Channel).where(Channel.id == created.json()["id"]))
    assert channel is not None
    accepted = await say(env.runtime, channel, "can I talk to someone?")
    await people.take_over(env.runtime, env.workspace_id, accepted.conversation_id, people.Person(None, "Dana"))
    await people.give_back(env.runtime, env.workspace_id, accepted.conversation_id)
    await env.api.patch("/channels/site", json={"return_notice": "Our assistant is back, thanks {name}!"})
    await people.take_over(env.runtime, env.workspace_id, accepted.conversation_id, people.Person(None, "Dana"))
    await people.give_back(env.runtime, env.workspace_id, accepted.conversation_id)
    async with env.runtime.db.sessions() as session:
        said = (await session.scalars(
            select(Message.text).where(Message.conversation_id == accepted.conversation_id, Message.author == "system")
            .order_by(Message.id)
        )).all()
    # The first return notice was "": none; {name} in a return notice is "our team".
    assert said == ["Hi, Dana here from Acme.", "Hi, Dana here from Acme.", "Our assistant is back, thanks our team!"]
