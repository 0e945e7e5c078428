"""The Agents builder in headless Chromium: create a chat agent, attach lookup, send_info and
handoff with their generated forms, chat in the Test panel (an offline answer with its trace
and a channel preview; with the fake OpenAI server, a tool call in the trace and a long reply
split for the channel), by keyboard too, at 375 px; axe finds nothing serious. Screenshots are
saved under test-artifacts/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from callable_agents.core.models import Agent, Workspace
from callable_agents.core.store.integrations import connect_integration
from callable_agents.testing.openai_server import FakeOpenAI
from tests.dashboard.agents_support import add_text_knowledge, builder_server
from tests.dashboard.support import add_member, check_accessibility, screenshot, signed_in_page, tab_to

pytestmark = pytest.mark.asyncio(loop_scope="session")

KNOWLEDGE = "Opening hours. We open at 7 am every day and close at 6 pm.\n\nSourdough. Our sourdough loaf costs $6."


async def _add_tool(page: Page, type_name: str, index: int) -> Any:
    await page.get_by_label("Add a tool of type").select_option(type_name)
    await page.get_by_role("button", name="Add tool").click()
    tool = page.locator(f"#tool-{index}")
    await expect(tool).to_be_visible()
    return tool


async def _send_test_message(page: Page, text: str, outcome: str, *, by_keyboard: bool = False) -> Any:
    """Type ``text`` in the Test panel, send it and wait for its own turn's ``outcome``."""
    turns = page.locator(".test-turn")
    before = await turns.count()
    await page.get_by_label("Your message").fill(text)
    if by_keyboard:
        await page.keyboard.press("Tab")
        await page.get_by_role("button", name="Send").press("Enter")
    else:
        await page.get_by_role("button", name="Send").click()
    turn = turns.nth(before)
    await expect(turn.locator(".outcome")).to_have_text(outcome, timeout=30_000)
    return turn


async def test_build_a_chat_agent_with_three_tools_and_test_it(tmp_path: Path, browser: Any) -> None:
    with FakeOpenAI() as fake:
        async with builder_server(tmp_path) as server:
            owner = await add_member(server.runtime, name="Ann Baker")
            await add_text_knowledge(server.runtime, owner.workspace_id, "faq", "Bakery FAQ", KNOWLEDGE)
            async with server.runtime.db.session() as session:
                workspace = await session.get(Workspace, owner.workspace_id)
                assert workspace is not None
                await connect_integration(session, server.runtime.vault, workspace, provider="openai", name="fake-ai",
                                          public={"base_url": fake.base_url}, secrets={"api_key": "sk-test-browser-key"})
            async with signed_in_page(browser, server, owner) as page:
                await page.get_by_role("navigation", name="Sections").get_by_role("link", name="Agents").click()
                await expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
                await page.get_by_label("Name").fill("front desk")  # a space: refused beside the field
                await page.get_by_role("button", name="Create agent").click()
                await expect(page.locator("#e-name")).to_be_visible()
                await expect(page.get_by_label("Name")).to_have_value("front desk")
                await page.get_by_label("Name").fill("front-desk")
                await page.get_by_label("Kind").select_option("chat")
                await page.get_by_role("button", name="Create agent").click()
                await expect(page.get_by_role("heading", name="front-desk")).to_be_visible()
                await expect(page.locator("#offline-note")).to_be_visible()

                await page.get_by_label("System prompt").fill("You are the front desk of Bella's Bakery.")
                await page.get_by_label("Business name").fill("Bella's Bakery")
                await page.get_by_label("faq").check()
                lookup = await _add_tool(page, "lookup", 0)
                await lookup.get_by_label("Name the model calls it by").fill("order_status")
                await lookup.get_by_label("Description").fill("Look up an order by its number.")
                await lookup.get_by_label("Url").fill("https://api.example.com/orders/{order_id}")
                await lookup.get_by_label("Parameters", exact=True).fill(json.dumps(
                    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}))
                send_info = await _add_tool(page, "send_info", 1)
                await send_info.get_by_label("Name the model calls it by").fill("send_menu")
                await send_info.get_by_label("Items").fill(json.dumps([{"key": "menu", "label": "Our menu", "kind": "link", "url": "https://example.com/menu"}]))
                handoff = await _add_tool(page, "handoff", 2)
                await expect(handoff.get_by_label("Customer message")).not_to_have_value("")  # the schema's default
                async with page.expect_navigation():  # "Saved." may be on the page already
                    await page.get_by_role("button", name="Save agent").click()
                await expect(page.get_by_text("Saved.")).to_be_visible()
                async with server.runtime.db.sessions() as session:
                    from sqlalchemy import select

                    agent = await session.scalar(select(Agent).where(Agent.name == "front-desk"))
                    assert agent is not None
                    assert [t["type"] for t in agent.tools] == ["lookup", "send_info", "handoff"]
                await check_accessibility(page)

                # Offline mode: an extractive answer with its passages and the preview.
                turn = await _send_test_message(page, "When do you open?", "offline")
                await expect(turn.locator(".bubble.agent")).to_contain_text("7 am")
                await expect(turn.locator(".trace-passages")).to_contain_text("Bakery FAQ")
                await expect(turn.locator(".preview summary")).to_contain_text("whatsapp")
                await expect(page.get_by_label("Your message")).to_have_value("")
                await check_accessibility(page)
                await screenshot(page, "agent-builder-offline", full_page=False)

                # With a model: a tool call in the trace, and a long reply split for WhatsApp.
                await page.get_by_label("Model integration").select_option("fake-ai")
                await page.get_by_label("Model name").fill("gpt-4o-mini")
                async with page.expect_navigation():  # "Saved." may be on the page already
                    await page.get_by_role("button", name="Save agent").click()
                await expect(page.get_by_text("Saved.")).to_be_visible()
                fake.queue_tool_call("send_menu", {"item": "menu"})
                fake.queue_reply("Here is our **menu**.")
                turn = await _send_test_message(page, "Can I see the menu?", "answered")
                await expect(turn.locator(".tool-calls")).to_contain_text("send_menu")
                await expect(turn.locator(".tool-calls")).to_contain_text('"item": "menu"')
                await expect(turn.locator(".preview-part").first).to_have_text("Here is our *menu*.")  # the channel's dialect
                fake.queue_reply("\n\n".join(f"**Step {i}.** Fold the dough, rest it for ten minutes and fold it again ({i})." for i in range(40)))
                turn = await _send_test_message(page, "How do you make sourdough?", "answered", by_keyboard=True)
                assert await turn.locator(".preview-part").count() >= 2
                await turn.scroll_into_view_if_needed()
                await check_accessibility(page)
                await screenshot(page, "agent-test-panel", full_page=False)
                await screenshot(page, "agent-builder")

                await page.goto(f"{server.url}/dashboard/agents")
                await expect(page.get_by_role("cell", name="gpt-4o-mini (fake-ai)")).to_be_visible()
                await check_accessibility(page)
                await screenshot(page, "agents")
                await page.goto(f"{server.url}/dashboard/tools")
                await expect(page.locator("#type-lookup")).to_contain_text("front-desk")
                await check_accessibility(page)
                await screenshot(page, "tools")


async def test_the_builder_by_keyboard_at_375_px(tmp_path: Path, browser: Any) -> None:
    async with builder_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        await add_text_knowledge(server.runtime, owner.workspace_id, "faq", "Bakery FAQ", KNOWLEDGE)
        async with signed_in_page(browser, server, owner, viewport={"width": 375, "height": 800}) as page:
            await page.goto(f"{server.url}/dashboard/agents")
            await tab_to(page, "#f-name")
            await page.keyboard.type("desk")
            await tab_to(page, "#create button[type=submit]")
            await page.keyboard.press("Enter")
            await expect(page.get_by_role("heading", name="desk")).to_be_visible()
            await tab_to(page, "#new-tool-type", limit=200)
            await page.keyboard.press("Tab")
            await page.keyboard.press("Enter")  # "Add tool": the first type's form
            await expect(page.locator("#tool-0")).to_be_visible()
            await tab_to(page, "#test-text", limit=300)
            await page.keyboard.type("When do you open?")
            await page.keyboard.press("Tab")
            await page.keyboard.press("Tab")
            await page.keyboard.press("Enter")
            await expect(page.locator(".test-turn .outcome")).to_have_text("no_answer", timeout=30_000)  # no knowledge attached
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"the page is {width}px wide at 375px"
            await check_accessibility(page)
            await screenshot(page, "agent-builder-375")
