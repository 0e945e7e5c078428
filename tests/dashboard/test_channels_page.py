"""Channels: a card per channel type; WhatsApp asks for Twilio first, then offers the account's
senders (fetched from the fake Twilio), refuses a voice agent, creates the channel, configures
Twilio (the fake records the URL set on the number) and sends a test message; the widget and
the page get their script tag and share link; forms come from each type's config schema;
CSRF, other workspaces' ids and XSS in names."""

from __future__ import annotations

import re

from callable_agents.core.models import Agent, Channel, Workspace
from callable_agents.core.store.channels import list_channels
from callable_agents.core.store.integrations import connect_integration
from callable_agents.plugins.whatsapp import channel_urls
from callable_agents.testing.twilio_server import FakeTwilio
from tests.dashboard.support import DashboardClient, Member, add_member, signed_in_client
from tests.dashboard.twilio_support import ACCOUNT, NUMBER, PUBLIC, TOKEN, server, twilio  # noqa: F401 (fixtures)
from tests.plugins.webchat_support import LiveServer


async def add_agents(server: LiveServer, member: Member, *names_kinds: tuple[str, str]) -> None:
    async with server.runtime.db.session() as session:
        for name, kind in names_kinds:
            session.add(Agent(workspace_id=member.workspace_id, name=name, kind=kind, system_prompt="Be helpful.", business_info={}))


async def connect_twilio(server: LiveServer, member: Member, name: str = "twilio") -> None:
    async with server.runtime.db.session() as session:
        workspace = await session.get(Workspace, member.workspace_id)
        assert workspace is not None
        await connect_integration(session, server.runtime.vault, workspace, provider="twilio", name=name,
                                  public={"account_sid": ACCOUNT}, secrets={"auth_token": TOKEN})


async def connect_http(server: LiveServer, member: Member) -> None:
    async with server.runtime.db.session() as session:
        workspace = await session.get(Workspace, member.workspace_id)
        assert workspace is not None
        await connect_integration(session, server.runtime.vault, workspace, provider="http", name="crm",
                                  public={}, secrets={"token": "crm-token-0000000000"})


async def channels_of(server: LiveServer, member: Member) -> list[Channel]:
    async with server.runtime.db.sessions() as session:
        return list(await list_channels(session, member.workspace_id))


async def create_whatsapp(client: DashboardClient, **changes: str) -> object:
    page = await client.get("/dashboard/channels/new/whatsapp")
    listed = re.findall(r'name="senders_listed" value="([^"]+)"', page.text)
    form = {"name": "whatsapp-main", "agent": "assistant", "integration": "twilio", "sender_choice": f"sender=whatsapp:{NUMBER}",
            "senders_listed": listed, "enabled": "on", "config.transcribe_voice_notes": "on", **changes}
    return await client.post("/dashboard/channels/new/whatsapp", form)


async def test_whatsapp_asks_for_twilio_until_an_integration_exists(server: LiveServer) -> None:
    owner = await add_member(server.runtime)
    await add_agents(server, owner, ("assistant", "chat"))
    async with signed_in_client(server, owner) as client:
        page = await client.get("/dashboard/channels")
        card = re.search(r'id="type-whatsapp".*?</section>', page.text, re.S).group(0)  # type: ignore[union-attr]
        assert "Connect Twilio first" in card and 'href="/dashboard/integrations?connect=twilio#connect"' in card
        assert "/dashboard/channels/new/whatsapp" not in card
        assert (await client.get("/dashboard/channels/new/whatsapp")).status_code == 303
        for kind in ("widget", "page"):
            assert f"/dashboard/channels/new/{kind}" in page.text  # no provider needed
        await connect_twilio(server, owner)
        page = await client.get("/dashboard/channels")
        assert "Connect Twilio first" not in page.text and "/dashboard/channels/new/whatsapp" in page.text


async def test_the_whatsapp_setup_lists_senders_refuses_a_voice_agent_and_creates_the_channel(server: LiveServer, twilio: FakeTwilio) -> None:
    owner = await add_member(server.runtime)
    await add_agents(server, owner, ("assistant", "chat"), ("caller", "voice"))
    await connect_twilio(server, owner)
    twilio.add_phone_number(ACCOUNT, NUMBER, friendly_name="Front desk", whatsapp=True)
    service = twilio.add_messaging_service(ACCOUNT, "Support")
    async with signed_in_client(server, owner) as client:
        page = await client.get("/dashboard/channels/new/whatsapp")
        assert page.status_code == 200
        assert f"{NUMBER} (Front desk)" in page.text and f"Support ({service})" in page.text
        assert "Twilio&#39;s WhatsApp sandbox" in page.text
        assert "caller (voice agent: cannot answer here)" in page.text
        assert 'name="config.max_media_bytes"' in page.text and 'name="config.template.content_sid"' in page.text

        voice = await create_whatsapp(client, agent="caller")
        assert voice.status_code == 422  # type: ignore[attr-defined]
        assert "&#39;caller&#39; is a voice agent and cannot answer on a whatsapp channel; attach a chat agent" in voice.text  # type: ignore[attr-defined]
        assert 'value="whatsapp-main"' in voice.text  # type: ignore[attr-defined]
        assert await channels_of(server, owner) == []

        created = await create_whatsapp(client)
        assert created.status_code == 303, created.text[:2000]  # type: ignore[attr-defined]
        [channel] = await channels_of(server, owner)
        assert channel.config["sender"] == f"whatsapp:{NUMBER}" and channel.config.get("messaging_service_sid") is None
        shown = await client.get(created.headers["location"])  # type: ignore[attr-defined]
        urls = channel_urls(server.runtime.settings, channel)
        assert urls["inbound"] in shown.text and urls["status"] in shown.text
        assert "Configure Twilio for me" in shown.text and "Send a test message" in shown.text
        assert TOKEN not in shown.text


async def test_configure_twilio_sets_the_numbers_url_and_a_test_message_goes_out(server: LiveServer, twilio: FakeTwilio) -> None:
    owner = await add_member(server.runtime)
    await add_agents(server, owner, ("assistant", "chat"))
    await connect_twilio(server, owner)
    twilio.add_phone_number(ACCOUNT, NUMBER, whatsapp=True)
    async with signed_in_client(server, owner) as client:
        created = await create_whatsapp(client)
        channel_id = created.headers["location"].split("/")[-1].split("?")[0]  # type: ignore[attr-defined]
        configured = await client.post(f"/dashboard/channels/{channel_id}/configure", headers={"HX-Request": "true"})
        assert configured.status_code == 200 and "<html" not in configured.text  # a fragment
        inbound = f"{PUBLIC}/channels/whatsapp/{channel_id}/inbound"
        assert "now sends to this channel" in configured.text and inbound in configured.text
        [update] = twilio.configuration_updates
        assert update["fields"] == {"SmsUrl": inbound, "SmsMethod": "POST"}

        no_script = await client.post(f"/dashboard/channels/{channel_id}/configure")
        assert no_script.status_code == 200 and "<html" in no_script.text and "now sends to this channel" in no_script.text

        sent = await client.post(f"/dashboard/channels/{channel_id}/test-message", {"to": "+15551230000", "text": "Hello <b>there</b>"},
                                 headers={"HX-Request": "true"})
        assert "Sent to whatsapp:+15551230000" in sent.text
        [message] = twilio.sent_messages
        assert (message["to"], message["from_"], message["body"]) == ("whatsapp:+15551230000", f"whatsapp:{NUMBER}", "Hello <b>there</b>")
        bad = await client.post(f"/dashboard/channels/{channel_id}/test-message", {"to": "555", "text": "hi"}, headers={"HX-Request": "true"})
        assert "to: expected a phone number in international format" in bad.text
        twilio.add_account(ACCOUNT, "rotated-elsewhere-token")
        refused = await client.post(f"/dashboard/channels/{channel_id}/configure", headers={"HX-Request": "true"})
        assert "Twilio refused the credentials of account" in refused.text and TOKEN not in refused.text


async def test_a_number_outside_the_account_is_refused_by_configure(server: LiveServer, twilio: FakeTwilio) -> None:
    owner = await add_member(server.runtime)
    await add_agents(server, owner, ("assistant", "chat"))
    await connect_twilio(server, owner)
    async with signed_in_client(server, owner) as client:
        created = await create_whatsapp(client, sender_choice="", **{"config.sender": "whatsapp:+14155550177"})
        assert created.status_code == 303  # type: ignore[attr-defined]
        channel_id = created.headers["location"].split("/")[-1].split("?")[0]  # type: ignore[attr-defined]
        answer = await client.post(f"/dashboard/channels/{channel_id}/configure", headers={"HX-Request": "true"})
        assert f"+14155550177 is not a phone number of Twilio account {ACCOUNT}" in answer.text
        assert twilio.configuration_updates == []


async def test_when_twilio_cannot_list_senders_the_sender_is_entered_by_hand(server: LiveServer, twilio: FakeTwilio) -> None:
    owner = await add_member(server.runtime)
    await add_agents(server, owner, ("assistant", "chat"))
    await connect_twilio(server, owner)
    twilio.fail_next(1, 503, scope="numbers")
    async with signed_in_client(server, owner) as client:
        page = await client.get("/dashboard/channels/new/whatsapp")
        assert "Could not list the account's senders" in page.text and "HTTP 503" in page.text
        assert 'name="config.sender"' in page.text
        bad = await client.post("/dashboard/channels/new/whatsapp", {"name": "wa", "agent": "assistant", "integration": "twilio",
                                                                     "config.sender": "+1415", "enabled": "on"})
        assert bad.status_code == 422 and "config.sender" in bad.text and "expected a WhatsApp sender like" in bad.text


async def test_widget_and_page_channels_get_their_script_tag_and_link(server: LiveServer) -> None:
    owner = await add_member(server.runtime)
    await add_agents(server, owner, ("assistant", "chat"))
    async with signed_in_client(server, owner) as client:
        page = await client.get("/dashboard/channels/new/widget")
        for name in ("config.allowed_origins", "config.appearance.color", "config.appearance.title",
                     "config.appearance.greeting", "config.appearance.position"):
            assert f'name="{name}"' in page.text, name
        bad = await client.post("/dashboard/channels/new/widget", {
            "name": "site", "agent": "assistant", "config.allowed_origins": "https://shop.example.com/path",
            "config.appearance.color": "red", "enabled": "on",
        })
        assert bad.status_code == 422 and "expected an origin like https://shop.example.com" in bad.text
        assert "config.appearance.color" in bad.text
        ok = await client.post("/dashboard/channels/new/widget", {
            "name": "site", "agent": "assistant", "config.allowed_origins": "https://shop.example.com\nhttp://localhost:*",
            "config.appearance.color": "#aa3300", "config.appearance.title": "Ask Bella", "config.appearance.position": "bottom-left",
            "enabled": "on",
        })
        assert ok.status_code == 303, ok.text[:3000]
        widget = await client.get(ok.headers["location"])
        [channel] = await channels_of(server, owner)
        assert channel.config["appearance"] == {"color": "#aa3300", "title": "Ask Bella", "greeting": "", "position": "bottom-left"}
        assert channel.config["allowed_origins"] == ["https://shop.example.com", "http://localhost:*"]
        assert f"{PUBLIC}/widget.js" in widget.text and f'data-channel="{channel.id}"' in widget.text.replace("&#34;", '"')
        assert "Configure" not in widget.text  # no provider set-up for a widget

        page_form = await client.get("/dashboard/channels/new/page")
        assert 'name="slug"' in page_form.text
        no_slug = await client.post("/dashboard/channels/new/page", {"name": "public", "agent": "assistant", "slug": "Bad Slug!", "enabled": "on"})
        assert no_slug.status_code == 422 and "expected lowercase letters, digits and dashes" in no_slug.text
        made = await client.post("/dashboard/channels/new/page", {"name": "public", "agent": "assistant", "slug": "bella", "enabled": "on"})
        assert made.status_code == 303
        shown = await client.get(made.headers["location"])
        assert f"{PUBLIC}/chat/bella" in shown.text


async def test_csrf_other_workspaces_and_escaping(server: LiveServer, twilio: FakeTwilio) -> None:
    owner = await add_member(server.runtime)
    other = await add_member(server.runtime, "Other Shop", email="other@example.com")
    await add_agents(server, owner, ("assistant", "chat"))
    await add_agents(server, other, ("theirs", "chat"))
    await connect_twilio(server, other, name="their-twilio")
    twilio.add_phone_number(ACCOUNT, NUMBER, whatsapp=True)
    async with signed_in_client(server, other) as client:
        made = await create_whatsapp(client, agent="theirs", integration="their-twilio")
        assert made.status_code == 303  # type: ignore[attr-defined]
    [theirs] = await channels_of(server, other)
    async with signed_in_client(server, owner) as client:
        assert (await client.get(f"/dashboard/channels/{theirs.id}")).status_code == 404
        for path in (f"/dashboard/channels/{theirs.id}", f"/dashboard/channels/{theirs.id}/configure", f"/dashboard/channels/{theirs.id}/test-message"):
            assert (await client.post(path, {"to": "+15551230000", "text": "x", "agent": "assistant"})).status_code == 404, path
        stolen = await client.post("/dashboard/channels/new/whatsapp", {"name": "wa", "agent": "assistant", "integration": "their-twilio",
                                                                        "config.sender": f"whatsapp:{NUMBER}", "enabled": "on"})
        assert stolen.status_code in (303, 422)
        assert stolen.status_code == 422 and "no integration named &#39;their-twilio&#39;" in stolen.text
        await connect_http(server, owner)
        wrong_kind = await client.post("/dashboard/channels/new/whatsapp", {"name": "wa", "agent": "assistant", "integration": "crm",
                                                                            "config.sender": f"whatsapp:{NUMBER}", "enabled": "on"})
        assert wrong_kind.status_code == 422 and "&#39;crm&#39; is a http integration; a WhatsApp channel needs a twilio one" in wrong_kind.text
        no_csrf = await client.post("/dashboard/channels/new/widget", {"name": "w", "agent": "assistant"}, csrf=False)
        assert no_csrf.status_code == 403
        xss = '<script>alert(1)</script>'
        escaped = await client.post("/dashboard/channels/new/widget", {"name": xss, "agent": xss, "config.appearance.title": xss, "enabled": "on"})
        assert escaped.status_code == 422 and xss not in escaped.text and "&lt;script&gt;" in escaped.text
    assert twilio.configuration_updates == [] and twilio.sent_messages == []
    assert await channels_of(server, owner) == []


async def test_the_live_preview_is_drawn_by_the_type_and_escaped(server: LiveServer) -> None:
    owner = await add_member(server.runtime)
    async with signed_in_client(server, owner) as client:
        xss = '<script>alert(1)</script>'
        drawn = await client.post("/dashboard/channels/preview/widget", {
            "config.appearance.title": xss, "config.appearance.color": "#112233", "config.appearance.position": "bottom-left",
        }, headers={"HX-Request": "true"})
        assert drawn.status_code == 200 and "<iframe" in drawn.text and " sandbox " in drawn.text
        assert xss not in drawn.text and "&lt;script&gt;" not in drawn.text  # escaped by the plugin, then again as an attribute
        assert "&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt;" in drawn.text
        assert "--accent:#112233" in drawn.text and "class=&#34;left&#34;" in drawn.text
        invalid = await client.post("/dashboard/channels/preview/widget", {"config.appearance.color": "red"}, headers={"HX-Request": "true"})
        assert "Fix the highlighted settings" in invalid.text and "<iframe" not in invalid.text
        page = await client.post("/dashboard/channels/preview/page", {"config.title": "Bella", "config.color": "#ffffff"})
        assert "Bella" in page.text and "--on:#111111" in page.text  # dark text on a light colour
        assert "Preview" not in (await client.get("/dashboard/channels/new/terminal")).text  # no preview: none shown
        assert (await client.post("/dashboard/channels/preview/nope", {})).status_code == 404
        assert (await client.post("/dashboard/channels/preview/widget", {}, csrf=False)).status_code == 403
