"""The product's journey, end to end, in one browser session as a new business meets it.

A one-time link creates the owner → connect Twilio (a wrong token first: refused, nothing
stored) → create a chat agent → a knowledge base from pasted text, a file and a website page,
watched until ready → the agent gets that knowledge and the lookup, send_info and handoff
tools → a WhatsApp channel from the account's numbers, Configure Twilio for me (the fake
Twilio records the webhook URL set on the number) → a signed webhook's question is answered
from the knowledge base and reaches the fake Twilio → a widget (its script tag) and a public
page, where a visitor's question is answered from the same knowledge. Everything is real: the
server (worker on, offline model), the fake Twilio over loopback, headless Chromium.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from callable_agents.core.store.channels import list_channels
from callable_agents.core.store.integrations import list_integrations
from callable_agents.core.store.workspaces import create_workspace
from callable_agents.dashboard.account import owner_setup_links
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import inbound_params, signed_form
from tests.dashboard.support import PASSWORD, check_accessibility, dashboard_server, screenshot
from tests.dashboard.twilio_support import ACCOUNT, NUMBER, PUBLIC, TOKEN, twilio  # noqa: F401 (a fixture)
from tests.knowledge.conftest import Response, TestSite, html

pytestmark = pytest.mark.asyncio(loop_scope="session")

CUSTOMER = "whatsapp:+15557654321"
HOURS = "Opening hours.\n\nWe open at 7 in the morning on weekdays and close at 6 in the evening."
TIMEOUT_MS = 60_000


async def nav(page: Page, section: str) -> None:
    await page.get_by_role("navigation", name="Sections").get_by_role("link", name=section, exact=True).click()


async def save_agent(page: Page) -> None:
    async with page.expect_navigation():
        await page.get_by_role("button", name="Save agent").click()
    await expect(page.get_by_text("Saved.")).to_be_visible()


async def add_tool(page: Page, type_name: str, index: int) -> Any:
    await page.get_by_label("Add a tool of type").select_option(type_name)
    await page.get_by_role("button", name="Add tool").click()
    tool = page.locator(f"#tool-{index}")
    await expect(tool).to_be_visible()
    return tool


async def test_a_business_sets_up_its_agent_and_channels_in_the_browser(tmp_path: Path, browser: Any, twilio: FakeTwilio) -> None:
    twilio.add_phone_number(ACCOUNT, NUMBER, friendly_name="Front desk", whatsapp=True)
    with TestSite() as site:
        site.routes["/delivery"] = Response(
            body=html("Delivery | Bella's Bakery", "<h1>Delivery</h1><p>We deliver wedding cakes within 20 miles for 15 dollars.</p>").body
        )
        async with dashboard_server(
            tmp_path, public_base_url=PUBLIC, twilio_api_base_url=twilio.base_url, twilio_messaging_base_url=twilio.base_url
        ) as server:
            async with server.runtime.db.session() as session:
                workspace = await create_workspace(session, server.runtime.vault, "Bella's Bakery", "bella")
            [(_, link)] = await owner_setup_links(server.runtime)  # what `callable serve` prints
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            try:
                page = await context.new_page()

                # The owner, from the one-time link.
                await page.goto(server.url + link)
                await expect(page.get_by_role("heading", name="Create the owner of Bella's Bakery")).to_be_visible()
                await page.get_by_label("E-mail").fill("ann@bella.example")
                await page.get_by_label("Your name").fill("Ann Baker")
                await page.locator("#f-password").fill(PASSWORD)
                await page.locator("#f-password_again").fill(PASSWORD)
                await check_accessibility(page)
                await screenshot(page, "journey-owner")
                await page.get_by_role("button", name="Create the owner").click()
                await expect(page.get_by_role("heading", name="Set up")).to_be_visible()

                # Integrations: Twilio, a wrong token first.
                await nav(page, "Integrations")
                await page.goto(f"{server.url}/dashboard/integrations?connect=twilio")
                await page.get_by_label("Account SID").fill(ACCOUNT)
                await page.get_by_label("Auth Token").fill("not-the-token")
                await page.get_by_role("button", name="Check and connect").click()
                await expect(page.get_by_text("Twilio rejected the credentials").first).to_be_visible()
                async with server.runtime.db.sessions() as session:
                    assert list(await list_integrations(session, workspace.id)) == []
                await page.get_by_label("Auth Token").fill(TOKEN)
                await page.get_by_role("button", name="Check and connect").click()
                await expect(page.get_by_text("the provider accepted the credentials")).to_be_visible()
                assert TOKEN not in await page.content()

                # A chat agent.
                await nav(page, "Agents")
                await page.get_by_label("Name").fill("assistant")
                await page.get_by_label("Kind").select_option("chat")
                await page.get_by_role("button", name="Create agent").click()
                await expect(page.get_by_role("heading", name="assistant")).to_be_visible()

                # Knowledge: pasted text, a file and a page of the business's site.
                await nav(page, "Knowledge Base")
                await page.get_by_label("Name").fill("Bakery FAQ")
                await page.get_by_role("button", name="Create").click()
                await expect(page.get_by_role("heading", name="Bakery FAQ")).to_be_visible()
                await page.locator("#f-title").fill("Opening hours")
                await page.locator("#f-text").fill(HOURS)
                await page.get_by_role("button", name="Add the text").click()
                # The new row is what says this add landed: the next form filled before it would be
                # wiped by this response's swap.
                await expect(page.locator("#sources tbody tr")).to_have_count(1)
                await page.set_input_files(
                    "#f-files", files=[{"name": "cakes.md", "mimeType": "text/markdown", "buffer": b"# Cakes\n\nBirthday cakes need two days' notice."}]
                )
                await page.get_by_role("button", name="Upload").click()
                await expect(page.locator("#sources tbody tr")).to_have_count(2)
                await page.locator("#f-url").fill(site.url("/delivery"))
                await page.get_by_role("button", name="Add the website").click()
                await expect(page.locator("#sources tbody tr")).to_have_count(3)
                await expect(page.get_by_text(f"Added {site.url('/delivery')}: it is being indexed")).to_be_visible()
                await expect(page.locator("#sources tbody tr[data-status=ready]")).to_have_count(3, timeout=TIMEOUT_MS)
                await screenshot(page, "journey-knowledge")

                # The agent gets the knowledge and three tools.
                await nav(page, "Agents")
                await page.get_by_role("link", name="assistant").first.click()
                await page.get_by_label("System prompt").fill("You are the assistant of Bella's Bakery.")
                await page.get_by_label("Business name").fill("Bella's Bakery")
                await page.get_by_label("Bakery FAQ").check()
                lookup = await add_tool(page, "lookup", 0)
                await lookup.get_by_label("Name the model calls it by").fill("order_status")
                await lookup.get_by_label("Description").fill("Look up an order by its number.")
                await lookup.get_by_label("Url").fill("https://api.example.com/orders/{order_id}")
                await lookup.get_by_label("Parameters", exact=True).fill(
                    json.dumps({"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]})
                )
                send_info = await add_tool(page, "send_info", 1)
                await send_info.get_by_label("Name the model calls it by").fill("send_menu")
                await send_info.get_by_label("Items").fill(
                    json.dumps([{"key": "menu", "label": "Our menu", "kind": "link", "url": "https://example.com/menu"}])
                )
                await add_tool(page, "handoff", 2)
                await save_agent(page)
                await check_accessibility(page)
                await screenshot(page, "journey-agent", full_page=False)

                # WhatsApp: a number of the account, configured at Twilio for us.
                await nav(page, "Channels")
                await page.locator("#type-whatsapp").get_by_role("link", name="Set up a WhatsApp channel").click()
                await page.get_by_label("Send from").select_option(label=f"{NUMBER} (Front desk)")
                await page.get_by_label("Chat agent").select_option("assistant")
                await page.get_by_role("button", name="Create the channel").click()
                await expect(page.get_by_text("Saved.")).to_be_visible()
                async with server.runtime.db.sessions() as session:
                    [whatsapp] = await list_channels(session, workspace.id, kind="whatsapp")
                inbound = f"{PUBLIC}/channels/whatsapp/{whatsapp.id}/inbound"
                await page.locator("#setup").get_by_role("button", name="Configure Twilio for me").click()
                await expect(page.get_by_text("now sends to this channel")).to_be_visible()
                assert twilio.phone_number(NUMBER)["sms_url"] == inbound
                await screenshot(page, "journey-whatsapp")

                # A customer writes on WhatsApp: Twilio's signed webhook; the answer comes from the knowledge.
                params = inbound_params(ACCOUNT, CUSTOMER, f"whatsapp:{NUMBER}", "When do you open on weekdays?")
                async with httpx.AsyncClient(base_url=server.url) as http:
                    acknowledged = await http.post(inbound.removeprefix(PUBLIC), **signed_form(TOKEN, inbound, params))
                assert acknowledged.status_code == 200
                replies: list[dict[str, Any]] = []
                for _ in range(400):
                    replies = [m for m in twilio.sent_messages if m["to"] == CUSTOMER]
                    if replies:
                        break
                    await asyncio.sleep(0.05)
                assert replies, "no reply reached the fake Twilio"
                assert replies[0]["from_"] == f"whatsapp:{NUMBER}"
                assert "7 in the morning" in replies[0]["body"], replies[0]["body"]

                # A widget: its script tag to paste.
                await nav(page, "Channels")
                await page.locator("#type-widget").get_by_role("link", name="Set up a Website widget channel").click()
                await page.get_by_label("Chat agent").select_option("assistant")
                await page.get_by_label("Allowed origins").fill("https://bella.example")
                await page.get_by_role("button", name="Create the channel").click()
                await expect(page.get_by_text("Saved.")).to_be_visible()
                await expect(page.locator("#addresses code").first).to_contain_text(f'<script src="{PUBLIC}/widget.js"')

                # A public page, where a visitor asks the same knowledge.
                await nav(page, "Channels")
                await page.locator("#type-page").get_by_role("link", name="Set up a Public chat page channel").click()
                await page.get_by_label("Chat agent").select_option("assistant")
                await page.get_by_label("Public URL name").fill("bella")
                await page.get_by_role("button", name="Create the channel").click()
                await expect(page.get_by_text("Saved.")).to_be_visible()
                await screenshot(page, "journey-page-channel")
            finally:
                await context.close()

            visitor = await browser.new_context(viewport={"width": 390, "height": 800})
            try:
                chat = await visitor.new_page()
                await chat.goto(f"{server.url}/chat/bella")
                box = chat.get_by_role("textbox", name="Your message")
                await box.fill("Do you deliver wedding cakes?")
                await box.press("Enter")
                answer = chat.locator(".msg.agent:not(.streaming)").filter(has_text="20 miles")
                await expect(answer).to_be_visible(timeout=TIMEOUT_MS)
                await screenshot(chat, "journey-visitor")
            finally:
                await visitor.close()
