"""The inbox with a web chat: a member takes a visitor's conversation over from the dashboard,
and the visitor's page shows the notice and the person's reply live, then the agent again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from callable_agents.testing.openai_server import FakeOpenAI
from tests.browser.test_webchat_browser import TIMEOUT_MS, ask
from tests.dashboard.support import add_member, check_accessibility, dashboard_server, screenshot, signed_in_page
from tests.plugins.webchat_support import make_web_setup

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_member_takes_over_a_web_chat_and_the_visitor_sees_it_live(tmp_path: Path, browser: Any) -> None:
    with FakeOpenAI() as fake:
        async with dashboard_server(tmp_path) as server:
            await make_web_setup(server.runtime, model_base_url=fake.base_url)
            member = await add_member(server.runtime, "Bella's Bakery", email="dana@example.com", name="Dana")
            async with signed_in_page(browser, server, member) as inbox:
                await inbox.goto(f"{server.url}/dashboard/conversations")
                await expect(inbox.locator("#inbox-list[data-live=open]")).to_have_count(1)
                visitor_context = await browser.new_context(viewport={"width": 420, "height": 800})
                try:
                    visitor = await visitor_context.new_page()
                    await visitor.goto(server.url + "/chat/bella")
                    chat = visitor.get_by_role("region", name="Bella's Bakery")
                    fake.queue_reply("Let me check that for you.")
                    await ask(visitor, "Can I order a wedding cake?")
                    await expect(chat.get_by_text("Let me check that for you.")).to_be_visible(timeout=TIMEOUT_MS)

                    row = inbox.locator(".inbox-row").first
                    await expect(row).to_contain_text("Let me check that for you.", timeout=TIMEOUT_MS)
                    await expect(row).to_contain_text("(page)")
                    await row.get_by_role("link").click()
                    await expect(inbox.locator("#messages[data-live=open]")).to_have_count(1)
                    await inbox.get_by_label("Reply as Dana").fill("Hi, I'm Dana. Yes we can!")
                    await inbox.get_by_role("button", name="Take over and send").click()
                    await expect(inbox.locator("#conversation-status")).to_have_text("Person")

                    await expect(chat.get_by_text("Dana from our team has joined the conversation.")).to_be_visible(timeout=TIMEOUT_MS)
                    person = chat.locator(".msg.human")
                    await expect(person).to_contain_text("Hi, I'm Dana. Yes we can!", timeout=TIMEOUT_MS)
                    await expect(person.locator(".label")).to_have_text("Dana (team)")
                    await visitor.screenshot(path=str(Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard-webchat-visitor.png"))

                    # The visitor writes while a person has it: the inbox shows it live, the agent stays silent.
                    await ask(visitor, "Great, for Saturday please")
                    await expect(inbox.locator(".msg.author-customer").last).to_contain_text("for Saturday", timeout=TIMEOUT_MS)
                    await check_accessibility(inbox)
                    await screenshot(inbox, "conversation-webchat")

                    await inbox.get_by_role("button", name="Return to agent").click()
                    await expect(chat.get_by_text("The assistant is back")).to_be_visible(timeout=TIMEOUT_MS)
                    fake.queue_reply("Anything else about your cake?")
                    await ask(visitor, "Thanks!")
                    await expect(chat.get_by_text("Anything else about your cake?")).to_be_visible(timeout=TIMEOUT_MS)
                    await expect(inbox.locator(".msg.author-agent").last).to_contain_text("Anything else about your cake?", timeout=TIMEOUT_MS)
                finally:
                    await visitor_context.close()
