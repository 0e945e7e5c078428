"""The Conversations inbox in headless Chromium against the running server, the fake Twilio
and the fake OpenAI: a handoff shows up live, a member replies (delivery statuses move live),
gives it back, and the agent answers again; two members see each other at once; outside
WhatsApp's window only the template goes; a dropped stream loses nothing."""

from __future__ import annotations

import json
import re

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from callable_agents.core.conversation.people import send_human_reply
from tests.dashboard.inbox_support import inbox_world
from tests.dashboard.support import add_member, check_accessibility, screenshot, signed_in_client, signed_in_page, tab_to
from tests.e2e.whatsapp_support import ACCOUNT, SENDER, TEMPLATE

pytestmark = pytest.mark.asyncio(loop_scope="session")

CUSTOMER = "whatsapp:+15550001111"


async def test_a_handoff_appears_live_a_member_replies_and_gives_it_back(tmp_path: Path, browser: Any) -> None:
    async with inbox_world(tmp_path) as world:
        async with signed_in_page(browser, world.server, world.owner) as page:
            await page.goto(f"{world.server.url}/dashboard/conversations")
            await expect(page.get_by_text("No conversations yet")).to_be_visible()
            await expect(page.locator("#inbox-list[data-live=open]")).to_have_count(1)
            await screenshot(page, "conversations-empty")

            # The customer asks for a person; the model calls the handoff tool.
            world.openai.queue_tool_call("handoff", {"reason": "wants to order a wedding cake"})
            world.openai.queue_reply("")
            await world.customer_says("Can I talk to a person about a wedding cake?", CUSTOMER, name="Ana")
            row = page.locator(".inbox-row").first
            await expect(row).to_contain_text("Needs a person: wants to order a wedding cake", timeout=15_000)
            await expect(row).to_contain_text("Ana")
            await expect(row).to_contain_text("whatsapp")
            await expect(row).to_contain_text("Person")
            await expect(row).to_contain_text("left to reply")
            await expect(row).to_contain_text("1 unread")
            await expect(page.locator("#live-state")).to_contain_text("Needs a person: wants to order a wedding cake")
            await check_accessibility(page)
            await screenshot(page, "conversations-list")

            await row.get_by_role("link").click()
            await expect(page.get_by_role("heading", name="Ana")).to_be_visible()
            await expect(page.locator("#messages")).to_contain_text("A person will reply here shortly.")
            await expect(page.locator("#messages[data-live=open]")).to_have_count(1)

            await page.get_by_label("Reply as Maria").fill("Hi Ana, I'm Maria. Which date?")
            await page.get_by_role("button", name="Send").click()
            sent = await world.sent_to(CUSTOMER, 2)
            mine = sent[-1]
            assert mine["from_"] == SENDER and mine["body"] == "Maria: Hi Ana, I'm Maria. Which date?"
            human = page.locator(".msg.author-human").last
            await expect(human).to_contain_text("Maria (person)")
            await expect(human.locator(".delivery")).to_have_text("Queued")

            await world.status_callback(mine["sid"], "delivered")
            await expect(human.locator(".delivery")).to_have_text("Delivered", timeout=5_000)
            await world.status_callback(mine["sid"], "read")
            await expect(human.locator(".delivery")).to_have_text("Read", timeout=5_000)
            await check_accessibility(page)
            await screenshot(page, "conversation-person")

            await page.get_by_role("button", name="Return to agent").click()
            await expect(page.locator("#conversation-status")).to_have_text("Agent")
            notice = await world.sent_to(CUSTOMER, 3)
            assert notice[-1]["body"] == "You're chatting with our assistant again."

            world.openai.queue_reply("The wedding cake tasting is on Saturdays.")
            await world.customer_says("When can I taste cakes?", CUSTOMER, name="Ana")
            await expect(page.locator(".msg.author-agent").last).to_contain_text("tasting is on Saturdays", timeout=15_000)
            replies = await world.sent_to(CUSTOMER, 4)
            assert replies[-1]["body"] == "The wedding cake tasting is on Saturdays."
            await screenshot(page, "conversation-returned")

            # The trace of the agent's turn, on demand.
            await page.locator(".msg.author-agent").last.get_by_text("How the agent answered").click()
            shown_trace = page.locator(".msg.author-agent").last.locator(".trace")
            await expect(shown_trace).to_contain_text("answered")
            await expect(shown_trace).to_contain_text("gpt-4o-mini")  # the model that answered, and its tokens
            await expect(shown_trace).to_contain_text(re.compile(r"\d+ prompt \+ \d+ completion = \d+"))

            # 375 px and the keyboard.
            await page.set_viewport_size({"width": 375, "height": 800})
            await screenshot(page, "conversation-375")
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            await tab_to(page, "#reply-text")


async def test_two_members_see_each_others_takeover_and_other_workspaces_see_nothing(tmp_path: Path, browser: Any) -> None:
    async with inbox_world(tmp_path) as world:
        conversation_id = await world.answered(CUSTOMER, "When do you open?", "We open at 7.")
        bo = await add_member(world.server.runtime, "Bella's Bakery", email="bo@example.com", name="Bo", role="member")
        async with signed_in_page(browser, world.server, world.owner) as maria, signed_in_page(browser, world.server, bo) as bo_page:
            await maria.goto(f"{world.server.url}/dashboard/conversations/{conversation_id}")
            await bo_page.goto(f"{world.server.url}/dashboard/conversations")
            await expect(maria.locator("#messages[data-live=open]")).to_have_count(1)
            await expect(bo_page.locator("#inbox-list[data-live=open]")).to_have_count(1)
            bo_row = bo_page.locator(f"#conv-{conversation_id}")
            await expect(bo_row).to_contain_text("Agent")
            await maria.get_by_role("button", name="Take over", exact=True).click()
            await expect(bo_row).to_contain_text("Person", timeout=5_000)
            await expect(bo_row).to_contain_text("Assigned to Maria")
            await screenshot(bo_page, "conversations-other-member")
            notice = await world.sent_to(CUSTOMER, 2)
            assert notice[-1]["body"] == "Maria from our team has joined the conversation."

            # Bo opens it and sees Maria give it back, live.
            await bo_page.goto(f"{world.server.url}/dashboard/conversations/{conversation_id}")
            await expect(bo_page.locator("#messages[data-live=open]")).to_have_count(1)
            await maria.get_by_role("button", name="Return to agent").click()
            await expect(bo_page.locator("#conversation-status")).to_have_text("Agent", timeout=5_000)
            # Bo has read it now; Maria's own list still counts what she has read.
            await bo_page.goto(f"{world.server.url}/dashboard/conversations")
            await expect(bo_page.locator(f"#conv-{conversation_id}")).not_to_contain_text("unread")

        # Another workspace's member: not by id, not by stream, not by search.
        outsider = await add_member(world.server.runtime, "Other Shop", email="eve@example.com")
        async with signed_in_client(world.server, outsider) as client:
            assert (await client.get(f"/dashboard/conversations/{conversation_id}")).status_code == 404
            assert (await client.get("/dashboard/conversations/events", params={"open": conversation_id})).status_code == 404
            bad_resume = await client.get("/dashboard/conversations/events", headers={"Last-Event-ID": "yesterday"})
            assert bad_resume.status_code == 422 and "Last-Event-ID" in bad_resume.text
            assert (await client.get("/dashboard/conversations", params={"status": "asleep"})).status_code == 422
            for action in ("takeover", "reply", "return", "close", "assign", "notes"):
                refused = await client.post(f"/dashboard/conversations/{conversation_id}/{action}", {"text": "x", "note": "x"})
                assert refused.status_code == 404, action
            assert (await client.get(f"/dashboard/conversations/{conversation_id}/turns/1/trace")).status_code == 404
            found = await client.get("/dashboard/conversations", params={"q": "Ana"})
            assert found.status_code == 200 and conversation_id not in found.text and "5550001111" not in found.text
            everything = await client.get("/dashboard/conversations")
            assert conversation_id not in everything.text
            # Its stream carries nothing of the other workspace.
            async with client.http.stream("GET", "/dashboard/conversations/events", params={"since": "0"}) as stream:
                await world.customer_says("still there?", CUSTOMER, name="Ana")
                seen = ""
                async for chunk in stream.aiter_text():
                    seen += chunk
                    if seen.count("\n\n") >= 2 or len(seen) > 2000:
                        break
                assert conversation_id not in seen and "Ana" not in seen

        # A post without the CSRF token is refused.
        async with signed_in_client(world.server, world.owner) as client:
            assert (await client.post(f"/dashboard/conversations/{conversation_id}/close", csrf=False)).status_code == 403


async def test_outside_the_window_the_accounts_approved_templates_are_offered_with_their_variables(tmp_path: Path, browser: Any) -> None:
    async with inbox_world(tmp_path) as world:
        ready = world.twilio.add_content(
            ACCOUNT, "order_ready", {"twilio/text": {"body": "Hi {{1}}, order {{2}} is ready"}},
            variables={"1": "Ana", "2": "A-17"}, approval=("order_ready", "UTILITY", "approved"),
        )
        conversation_id = await world.answered(CUSTOMER, "Hi", "Hello!")
        await world.age_window(conversation_id)
        async with signed_in_page(browser, world.server, world.owner) as page:
            await page.goto(f"{world.server.url}/dashboard/conversations/{conversation_id}")
            await expect(page.get_by_label(f"Approved template {TEMPLATE}", exact=False)).to_be_checked()  # the channel's own first
            await page.get_by_label("order_ready (en)", exact=False).check()
            await page.get_by_label("Variable {{1}}").fill("Ana <b>")
            await check_accessibility(page)
            await screenshot(page, "conversation-approved-templates")
            await page.get_by_role("button", name="Send template").click()
            await expect(page.locator(".alert.error")).to_contain_text(
                "needs a value for variable 2 (e.g. 'A-17')"
            )
            await expect(page.get_by_label("Variable {{1}}")).to_have_value("Ana <b>")  # what was typed is kept
            await expect(page.get_by_label("order_ready (en)", exact=False)).to_be_checked()
            await page.get_by_label("Variable {{2}}").fill("B-42")
            await page.get_by_role("button", name="Send template").click()
            sent = await world.sent_to(CUSTOMER, 2)
            assert sent[-1]["content_sid"] == ready
            assert json.loads(sent[-1]["content_variables"]) == {"1": "Ana <b>", "2": "B-42"}


async def test_outside_the_window_only_the_template_goes(tmp_path: Path, browser: Any) -> None:
    async with inbox_world(tmp_path) as world:
        conversation_id = await world.answered(CUSTOMER, "Hi", "Hello!")
        await world.age_window(conversation_id)
        async with signed_in_client(world.server, world.owner) as client:
            refused = await client.post(f"/dashboard/conversations/{conversation_id}/reply", {"text": "Are you still there?"})
            assert refused.status_code == 422
            assert "outside the 24-hour reply window" in refused.text and "Are you still there?" in refused.text
        async with signed_in_page(browser, world.server, world.owner) as page:
            await page.goto(f"{world.server.url}/dashboard/conversations/{conversation_id}")
            await expect(page.get_by_text("only an approved template can")).to_be_visible()
            await expect(page.get_by_text("Reply window closed: templates only")).to_be_visible()
            await expect(page.get_by_label(f"Approved template {TEMPLATE}", exact=False)).to_be_checked()
            await page.get_by_label("Your text, sent in the template").fill("Your cake is ready")
            await check_accessibility(page)
            await screenshot(page, "conversation-template")
            await page.get_by_role("button", name="Send template").click()
            sent = await world.sent_to(CUSTOMER, 2)
            assert len(sent) == 2 and sent[-1]["content_sid"] == TEMPLATE  # no takeover notice as a second template
            assert '"Maria: Your cake is ready"' in (sent[-1].get("content_variables") or "")
            await expect(page.locator(".msg.author-human").last).to_contain_text("template")
            await world.status_callback(sent[-1]["sid"], "failed", 21610)
            await expect(page.locator(".msg.author-human").last.locator(".msg-error")).to_contain_text(
                "Not delivered: the customer opted out", timeout=5_000
            )

            # An internal note stays in the team; assigning picks a member.
            before = len(world.twilio.sent_messages)
            await page.get_by_label("Add a note").fill("Ana <b>prefers</b> mornings")
            await page.get_by_role("button", name="Add note").click()
            await expect(page.locator("#notes")).to_contain_text("Ana <b>prefers</b> mornings")
            await page.get_by_role("button", name="Add note").click()
            await expect(page.locator("#note-error")).to_have_text("note: this field is required")
            await page.get_by_label("Assign to").select_option(label="Maria (me)")
            await page.get_by_role("button", name="Assign").click()
            await expect(page.locator("#conversation-header")).to_contain_text("Assigned to Maria")
            assert len(world.twilio.sent_messages) == before
            await screenshot(page, "conversation-notes")

            # The list at 375 px, filtered to mine, reachable by keyboard.
            await page.set_viewport_size({"width": 375, "height": 800})
            await page.goto(f"{world.server.url}/dashboard/conversations?mine=1")
            await expect(page.locator(f"#conv-{conversation_id}")).to_contain_text("Reply window closed")
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            await check_accessibility(page)
            await screenshot(page, "conversations-375")
            await tab_to(page, "#q")
            await page.keyboard.type("+15550001111")
            await page.keyboard.press("Enter")
            await expect(page.locator(".inbox-row")).to_have_count(1)
            await page.goto(f"{world.server.url}/dashboard/conversations?q=nobody-like-this")
            await expect(page.get_by_text("No conversation matches these filters.")).to_be_visible()


async def test_a_dropped_stream_loses_nothing_and_shows_nothing_twice(tmp_path: Path, browser: Any) -> None:
    async with inbox_world(tmp_path) as world:
        world.openai.queue_tool_call("handoff", {"reason": "complaint"})
        world.openai.queue_reply("")
        await world.customer_says("I need a person", CUSTOMER, name="Ana")
        await world.sent_to(CUSTOMER, 1)
        conversation_id = await world.conversation_id(CUSTOMER)
        runtime = world.server.runtime
        async with signed_in_page(browser, world.server, world.owner) as page:
            await page.goto(f"{world.server.url}/dashboard/conversations/{conversation_id}")
            await expect(page.locator("#messages[data-live=open]")).to_have_count(1)
            await send_human_reply(runtime, world.owner.workspace_id, conversation_id, "before the drop", author_name="Maria")
            await expect(page.locator(".msg", has_text="before the drop")).to_have_count(1)
            await page.evaluate("window.callableInbox.drop(1500)")
            for n in range(3):
                await send_human_reply(runtime, world.owner.workspace_id, conversation_id, f"while dropped {n}", author_name="Maria")
                await world.customer_says(f"customer while dropped {n}", CUSTOMER, name="Ana")
            for n in range(3):
                await expect(page.locator(".msg", has_text=f"while dropped {n}").filter(has_not_text="customer")).to_have_count(1, timeout=10_000)
                await expect(page.locator(".msg", has_text=f"customer while dropped {n}")).to_have_count(1, timeout=10_000)
            await expect(page.locator(".msg", has_text="before the drop")).to_have_count(1)
            ids = await page.eval_on_selector_all(".msg", "nodes => nodes.map(n => n.id)")
            assert len(ids) == len(set(ids))
            assert ids == sorted(ids, key=lambda i: int(i.split("-")[1]))
