"""The Twilio journey in headless Chromium against the fake Twilio: connect Twilio (a wrong
token first: refused, nothing stored), create a WhatsApp channel from the account's senders,
Configure Twilio for me (the fake records the URL set on the number), send a test message,
and a signed webhook's question is answered and reaches the fake Twilio. Then a widget with
its script tag. Every page: no serious accessibility violation, reachable by keyboard, usable
at 375 px; screenshots in test-artifacts/."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from callable_agents.core.models import Agent
from callable_agents.core.store.channels import list_channels
from callable_agents.core.store.integrations import list_integrations
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import inbound_params, signed_form
from tests.dashboard.support import ARTIFACTS, add_member, check_accessibility, dashboard_server, screenshot, signed_in_page, tab_to
from tests.dashboard.twilio_support import ACCOUNT, NUMBER, PUBLIC, TOKEN, twilio  # noqa: F401 (a fixture)

pytestmark = pytest.mark.asyncio(loop_scope="session")

CUSTOMER = "whatsapp:+15551234567"


@pytest.fixture
def seeded(twilio: FakeTwilio) -> FakeTwilio:
    twilio.add_phone_number(ACCOUNT, NUMBER, friendly_name="Front desk", whatsapp=True)
    twilio.add_messaging_service(ACCOUNT, "Support")
    return twilio


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"dashboard-{name}.png"


async def fits(page: Page, width: int = 375) -> None:
    """The page needs no sideways scrolling at ``width``; else name what sticks out of ``main``."""
    await page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")  # laid out
    scroll = await page.evaluate("document.documentElement.scrollWidth")
    wide = await page.evaluate(
        "w => [...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > w)"
        ".slice(-5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().width))", width,
    )
    assert scroll <= width, f"{page.url} is {scroll}px wide at {width}px: {wide}"


async def test_connect_twilio_create_configure_and_answer(tmp_path: Path, browser: Any, seeded: FakeTwilio) -> None:
    twilio = seeded
    # The server runs in the test's (session) event loop, as the browser does: not a fixture.
    async with dashboard_server(
        tmp_path, public_base_url=PUBLIC, twilio_api_base_url=twilio.base_url, twilio_messaging_base_url=twilio.base_url
    ) as server:
        owner = await add_member(server.runtime, name="Bella")
        async with server.runtime.db.session() as session:
            session.add(Agent(
                workspace_id=owner.workspace_id, name="assistant", kind="chat", system_prompt="You are Bella's Bakery's assistant.",
                business_info={"name": "Bella's Bakery", "hours": "We are open Monday to Saturday, 7:00 to 18:00."},
            ))
        async with signed_in_page(browser, server, owner) as page:
            # Channels: WhatsApp needs Twilio first.
            await page.goto(f"{server.url}/dashboard/channels")
            card = page.locator("#type-whatsapp")
            await expect(card.get_by_text("Connect Twilio first")).to_be_visible()
            await check_accessibility(page)
            await screenshot(page, "channels-before-twilio")
            await card.get_by_role("link", name="Connect Twilio").click()

            # Integrations: a wrong token is refused and nothing is stored.
            await expect(page.get_by_role("heading", name="Connect Twilio")).to_be_visible()
            await page.get_by_label("Account SID").fill(ACCOUNT)
            await page.get_by_label("Auth Token").fill("a-wrong-token-typed-by-hand")
            await page.get_by_role("button", name="Check and connect").click()
            await expect(page.get_by_text("Twilio rejected the credentials").first).to_be_visible()
            await expect(page.get_by_label("Account SID")).to_have_value(ACCOUNT)
            await expect(page.get_by_label("Auth Token")).to_have_value("")
            async with server.runtime.db.sessions() as session:
                assert list(await list_integrations(session, owner.workspace_id)) == []
            await check_accessibility(page)
            await screenshot(page, "integrations-refused")
            await page.get_by_label("Auth Token").fill(TOKEN)
            await page.get_by_role("button", name="Check and connect").click()
            await expect(page.get_by_text("the provider accepted the credentials")).to_be_visible()
            await expect(page.get_by_text("••••WXYZ")).to_be_visible()
            assert TOKEN not in await page.content()
            await check_accessibility(page)
            await screenshot(page, "integrations")

            # The WhatsApp channel, from the account's senders.
            await page.get_by_role("navigation", name="Sections").get_by_role("link", name="Channels").click()
            await page.locator("#type-whatsapp").get_by_role("link", name="Set up a WhatsApp channel").click()
            await page.get_by_label("Send from").select_option(label=f"{NUMBER} (Front desk)")
            await page.get_by_label("Chat agent").select_option("assistant")
            await check_accessibility(page)
            await screenshot(page, "channel-new-whatsapp")
            await page.get_by_role("button", name="Create the channel").click()
            await expect(page.get_by_text("Saved.")).to_be_visible()
            async with server.runtime.db.sessions() as session:
                [channel] = await list_channels(session, owner.workspace_id)
            inbound = f"{PUBLIC}/channels/whatsapp/{channel.id}/inbound"
            await expect(page.locator("#addresses").get_by_text(inbound)).to_be_visible()

            # Configure Twilio for me, by keyboard.
            await tab_to(page, "#setup button[type=submit]")
            await page.keyboard.press("Enter")
            await expect(page.get_by_text("now sends to this channel")).to_be_visible()
            assert twilio.phone_number(NUMBER)["sms_url"] == inbound
            assert [u["fields"] for u in twilio.configuration_updates] == [{"SmsUrl": inbound, "SmsMethod": "POST"}]

            # A test message.
            await page.locator("#f-to").fill("+15550001111")
            await page.locator("#setup").get_by_role("button", name="Send").click()
            await expect(page.get_by_text("Sent to whatsapp:+15550001111")).to_be_visible()
            await check_accessibility(page)
            await screenshot(page, "channel-whatsapp")

            # Twilio calls the URL it was given, signed; the question is answered through Twilio.
            params = inbound_params(ACCOUNT, CUSTOMER, f"whatsapp:{NUMBER}", "When are you open?")
            async with httpx.AsyncClient(base_url=server.url) as http:
                answer = await http.post(inbound.removeprefix(PUBLIC), **signed_form(TOKEN, inbound, params))
            assert answer.status_code == 200
            for _ in range(200):
                replies = [m for m in twilio.sent_messages if m["to"] == CUSTOMER]
                if replies:
                    break
                await asyncio.sleep(0.05)
            assert replies, "no reply reached the fake Twilio"
            assert replies[0]["from_"] == f"whatsapp:{NUMBER}" and replies[0]["body"]
            assert replies[0]["status_callback"] == f"{PUBLIC}/channels/whatsapp/{channel.id}/status"

            # A phone.
            await page.set_viewport_size({"width": 375, "height": 800})
            await fits(page)
            await screenshot(page, "channel-whatsapp-phone")
            await page.goto(f"{server.url}/dashboard/channels")
            await fits(page)
            await screenshot(page, "channels-phone")
            await page.goto(f"{server.url}/dashboard/integrations?connect=twilio")
            await fits(page)


async def test_a_widget_gets_its_script_tag(tmp_path: Path, browser: Any) -> None:
    async with dashboard_server(tmp_path, public_base_url=PUBLIC) as server:
        owner = await add_member(server.runtime)
        async with server.runtime.db.session() as session:
            session.add(Agent(workspace_id=owner.workspace_id, name="assistant", kind="chat", system_prompt="Hi.", business_info={}))
            session.add(Agent(workspace_id=owner.workspace_id, name="phone-line", kind="voice", system_prompt="Hi.", business_info={}))
        async with signed_in_page(browser, server, owner) as page:
            await page.goto(f"{server.url}/dashboard/channels")
            await check_accessibility(page)
            await screenshot(page, "channels")
            await page.locator("#type-widget").get_by_role("link", name="Set up a Website widget channel").click()
            preview = page.frame_locator(".preview-frame")
            await expect(preview.locator(".head")).to_have_text("Chat with us")  # the defaults, before any typing
            await page.get_by_label("Chat agent").select_option("phone-line")
            await page.get_by_label("Allowed origins").fill("https://shop.example.com")
            await page.get_by_label("Color").fill("#aa3300")
            await page.get_by_label("Title").fill("Ask <b>Bella</b>")
            await page.get_by_label("Position").select_option("bottom-left")
            await expect(preview.locator(".head")).to_have_text("Ask <b>Bella</b>")  # live, and as text
            # Retrying assertions: the title's own preview (300 ms after its typing) may replace
            # the frame after the position's, which already showed the new title.
            await expect(preview.locator("body")).to_have_css("--accent", re.compile(r"^\s*#aa3300\s*$"))
            await expect(preview.locator("body")).to_have_class("left")
            await page.get_by_label("Color").fill("red")
            await expect(page.locator("#preview").get_by_text("Fix the highlighted settings")).to_be_visible()
            await page.get_by_label("Color").fill("#aa3300")
            await page.get_by_label("Title").fill("Ask Bella")
            await expect(preview.locator(".head")).to_have_text("Ask Bella")
            await page.locator("aside.channel-preview").screenshot(path=str(screenshot_path("widget-preview")))
            await page.get_by_role("button", name="Create the channel").click()
            await expect(page.get_by_text("is a voice agent and cannot answer on a widget channel").first).to_be_visible()
            await expect(page.get_by_label("Title")).to_have_value("Ask Bella")
            await check_accessibility(page)
            await screenshot(page, "channel-new-widget-refused")
            await page.get_by_label("Chat agent").select_option("assistant")
            await page.get_by_role("button", name="Create the channel").click()
            await expect(page.get_by_text("Saved.")).to_be_visible()
            await expect(page.locator("#addresses code").first).to_contain_text(f'<script src="{PUBLIC}/widget.js"')
            await check_accessibility(page)
            await screenshot(page, "channel-widget")
            await page.set_viewport_size({"width": 375, "height": 800})
            await fits(page)
