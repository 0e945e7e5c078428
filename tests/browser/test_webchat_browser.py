"""The widget and the public chat page in a real browser (headless Chromium).

Each test runs the real server (uvicorn, worker on) and, for the widget, a second loopback
origin — the business's site — that embeds the script tag. The model is the loopback fake
OpenAI server streaming a scripted reply; the knowledge base indexes a page of the
business's site, so answers carry a real citation.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from callable_agents.core.conversation.people import hand_off, return_to_agent, send_human_reply
from callable_agents.testing.openai_server import FakeOpenAI
from tests.dashboard.support import check_accessibility
from tests.plugins.webchat_support import (
    HOURS_PAGE,
    BusinessSite,
    LiveServer,
    make_web_setup,
    server_app,
    web_settings,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the browser is shared by the run

ANSWER = "We open at **7:00** from Monday to Saturday."
TIMEOUT_MS = 10_000


@asynccontextmanager
async def open_page(browser: Any, **options: Any) -> AsyncIterator[Page]:
    """A page in its own context, closed before the server stops (its event stream ends)."""
    context = await browser.new_context(**options)
    try:
        yield await context.new_page()
    finally:
        await context.close()


class PageWatch:
    """What a page did that it shouldn't: dialogs, uncaught errors, and live-token sightings."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: self.console.append(message.text))

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()


async def record_streaming(page: Page) -> None:
    """Note, in the page, every moment a reply was shown while still streaming."""
    await page.evaluate(
        """() => {
          window.__streamed = [];
          const watch = () => {
            const host = document.querySelector('[data-callable-chat]');
            if (!host || !host.shadowRoot) return requestAnimationFrame(watch);
            new MutationObserver(() => {
              const live = host.shadowRoot.querySelector('.msg.streaming .bubble');
              if (live && live.textContent) window.__streamed.push(live.textContent);
            }).observe(host.shadowRoot, {subtree: true, childList: true, characterData: true});
          };
          watch();
        }"""
    )


async def ask(page: Page, question: str) -> None:
    box = page.get_by_role("textbox", name="Your message")
    await box.fill(question)
    await box.press("Enter")


async def test_widget_streams_a_grounded_answer_with_citation_and_keeps_history(
    tmp_path: Path, browser: Any, artifacts: Path
) -> None:
    with FakeOpenAI() as fake:
        async with BusinessSite({"/hours": HOURS_PAGE}) as site:
            async with LiveServer(server_app(web_settings(tmp_path))) as server:
                allowed = site.url_on("localhost")
                hours_url = f"{site.url_on('127.0.0.1')}/hours"
                setup = await make_web_setup(
                    server.runtime,
                    model_base_url=fake.base_url,
                    widget_config={"allowed_origins": [allowed], "appearance": {"title": "Ask Bella", "color": "#7c2d12"}},
                    knowledge_urls=(hours_url,),
                )
                site.configure(api=server.url, channel_id=setup.channels["widget"].id)
                fake.queue_reply(ANSWER + " [1]", chunk_delay=0.12)  # the model marks the passage it used
                async with open_page(browser, viewport={"width": 1000, "height": 760}) as page:
                    watch = PageWatch(page)
                    await page.goto(allowed + "/")
                    launcher = page.get_by_role("button", name=re.compile("^Open chat: Ask Bella"))
                    await expect(launcher).to_be_visible(timeout=TIMEOUT_MS)
                    # The site's `button {background: #ff00ff !important}` doesn't reach into the shadow root.
                    color = await launcher.evaluate("b => getComputedStyle(b).backgroundColor")
                    assert color == "rgb(124, 45, 18)"
                    await launcher.click()
                    dialog = page.get_by_role("dialog", name="Ask Bella")
                    await expect(dialog).to_be_visible()
                    await expect(page.get_by_role("textbox", name="Your message")).to_be_focused()
                    await expect(dialog.get_by_text("Hi! Ask me about Bella's Bakery.")).to_be_visible()
                    await record_streaming(page)
                    await ask(page, "When do you open?")

                    answer = page.locator(".msg.agent:not(.streaming)").filter(has_text="We open at")
                    await expect(answer).to_be_visible(timeout=TIMEOUT_MS)
                    streamed = await page.evaluate("window.__streamed")
                    assert any("We open" in text and "Saturday" not in text for text in streamed), streamed
                    await expect(answer.locator("strong")).to_have_text("7:00")
                    citation = answer.get_by_role("link", name="Opening hours")
                    await expect(citation).to_have_attribute("href", hours_url)
                    await expect(citation).to_have_attribute("target", "_blank")
                    await expect(citation).to_have_attribute("rel", re.compile("noopener"))
                    assert "opens at 7:00" in fake.chat_requests[0].prompt_text  # grounded in the indexed page
                    await check_accessibility(page)  # axe-core reaches into the widget's open shadow root
                    await page.screenshot(path=str(artifacts / "widget-answer.png"))
                    token = await page.evaluate("Object.entries(localStorage).find(([k]) => k.startsWith('callable-chat:'))[1]")

                    await page.reload()
                    dialog = page.get_by_role("dialog", name="Ask Bella")
                    await expect(dialog).to_be_visible(timeout=TIMEOUT_MS)  # it was open: it opens again
                    await expect(dialog.locator(".msg.customer")).to_have_text(re.compile("When do you open\\?"))
                    restored = dialog.locator(".msg.agent").filter(has_text="We open at")
                    await expect(restored.get_by_role("link", name="Opening hours")).to_have_attribute("href", hours_url)
                    assert await page.evaluate("Object.entries(localStorage).find(([k]) => k.startsWith('callable-chat:'))[1]") == token
                    await page.screenshot(path=str(artifacts / "widget-history.png"))

                    await page.keyboard.press("Escape")
                    await expect(dialog).to_be_hidden()
                    await expect(launcher).to_be_focused()
                    assert not watch.errors and not watch.dialogs


async def test_widget_on_a_disallowed_origin_gets_no_session(tmp_path: Path, browser: Any, artifacts: Path) -> None:
    async with BusinessSite() as site:
        async with LiveServer(server_app(web_settings(tmp_path))) as server:
            setup = await make_web_setup(server.runtime, widget_config={"allowed_origins": [site.url_on("localhost")]})
            site.configure(api=server.url, channel_id=setup.channels["widget"].id)
            async with open_page(browser) as page:
                watch = PageWatch(page)
                failed: list[str] = []
                page.on("requestfailed", lambda request: failed.append(request.url) if "/sessions" in request.url else None)
                async with page.expect_console_message(lambda message: "not available here" in message.text, timeout=TIMEOUT_MS):
                    await page.goto(site.url_on("127.0.0.1") + "/")  # same site, other origin: not on the list
                assert len(failed) == 1  # its CORS preflight was refused, so the POST never went out
                assert await page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('callable-chat:')).length") == 0
                await expect(page.get_by_role("button", name=re.compile("^Open chat"))).to_have_count(0)
                await page.screenshot(path=str(artifacts / "widget-disallowed-origin.png"))
                assert not watch.dialogs


async def test_public_page_streams_a_grounded_answer_and_keeps_history(tmp_path: Path, browser: Any, artifacts: Path) -> None:
    with FakeOpenAI() as fake:
        async with BusinessSite({"/hours": HOURS_PAGE}) as site:
            async with LiveServer(server_app(web_settings(tmp_path))) as server:
                hours_url = f"{site.url_on('127.0.0.1')}/hours"
                await make_web_setup(server.runtime, model_base_url=fake.base_url, knowledge_urls=(hours_url,))
                fake.queue_reply(ANSWER + " [1]", chunk_delay=0.12)  # the model marks the passage it used
                page = await browser.new_page(viewport={"width": 360, "height": 720})  # a phone
                watch = PageWatch(page)
                await page.goto(server.url + "/chat/bella")
                await expect(page.get_by_role("heading", level=1)).to_have_text("Bella's Bakery")
                chat = page.get_by_role("region", name="Bella's Bakery")
                await expect(chat.get_by_text("Hi! Ask me about Bella's Bakery.")).to_be_visible(timeout=TIMEOUT_MS)
                await record_streaming(page)
                await ask(page, "When do you open?")
                answer = chat.locator(".msg.agent:not(.streaming)").filter(has_text="We open at")
                await expect(answer).to_be_visible(timeout=TIMEOUT_MS)
                assert any("Saturday" not in text for text in await page.evaluate("window.__streamed"))
                await expect(answer.get_by_role("link", name="Opening hours")).to_have_attribute("href", hours_url)
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= 360  # nothing overflows a phone's width
                await check_accessibility(page)
                await page.screenshot(path=str(artifacts / "page-answer.png"))

                await page.reload()
                chat = page.get_by_role("region", name="Bella's Bakery")
                await expect(chat.locator(".msg.customer")).to_have_text(re.compile("When do you open\\?"), timeout=TIMEOUT_MS)
                await expect(chat.locator(".msg.agent").filter(has_text="We open at")).to_be_visible()
                await page.screenshot(path=str(artifacts / "page-history.png"))
                assert not watch.errors and not watch.dialogs


HOSTILE_PAGE = (
    "<!doctype html><html><head><title>&lt;img src=x onerror=\"window.__pwned='title'\"&gt;</title></head><body><main>"
    "<h1>Gift cards</h1><p>Gift cards are sold at the counter. "
    "&lt;script&gt;window.__pwned='kb'&lt;/script&gt; &lt;img src=x onerror=\"window.__pwned='kb-img'\"&gt;</p>"
    "</main></body></html>"
)
HOSTILE_REPLY = (
    "Gift cards: <script>window.__pwned='model'</script> "
    "<img src=x onerror=\"window.__pwned='model-img'\"> "
    "[claim yours](javascript:window.__pwned='model-link') and [spaced](  JaVaScRiPt:alert(1)) "
    "**safe bold** [real link](https://example.com/gift)"
)


async def test_model_and_knowledge_text_is_shown_as_text_and_runs_nothing(
    tmp_path: Path, browser: Any, artifacts: Path
) -> None:
    with FakeOpenAI() as fake:
        async with BusinessSite({"/gift-cards": HOSTILE_PAGE}) as site:
            async with LiveServer(server_app(web_settings(tmp_path))) as server:
                await make_web_setup(
                    server.runtime,
                    model_base_url=fake.base_url,
                    knowledge_urls=(f"{site.url_on('127.0.0.1')}/gift-cards",),
                    greeting="<img src=x onerror=\"window.__pwned='greeting'\"> Welcome!",
                )
                fake.queue_reply(HOSTILE_REPLY + " [1]")  # cites the hostile page, so its title shows
                async with open_page(browser) as page:
                    watch = PageWatch(page)
                    await page.goto(server.url + "/chat/bella")
                    chat = page.get_by_role("region", name="Bella's Bakery")
                    await ask(page, "Do you sell gift cards?")
                    answer = chat.locator(".msg.agent").filter(has_text="Gift cards:")
                    await expect(answer).to_be_visible(timeout=TIMEOUT_MS)
                    await expect(answer).to_contain_text("<script>window.__pwned='model'</script>")
                    await expect(answer).to_contain_text("<img src=x onerror=")
                    await expect(answer).to_contain_text("[claim yours](javascript:window.__pwned='model-link')")
                    await expect(answer.locator("strong")).to_have_text("safe bold")
                    await expect(answer.get_by_role("link", name="real link")).to_have_attribute("href", "https://example.com/gift")
                    # The knowledge page's hostile title is the citation's text, nothing more.
                    await expect(answer.get_by_role("link", name=re.compile("^<img src=x onerror="))).to_have_count(1)
                    shadow = "document.querySelector('[data-callable-chat]').shadowRoot"
                    assert await page.evaluate(f"{shadow}.querySelectorAll('img, script, iframe').length") == 0
                    hrefs = await page.evaluate(f"[...{shadow}.querySelectorAll('a')].map(a => a.getAttribute('href'))")
                    assert hrefs and all(href.startswith(("http://", "https://")) for href in hrefs), hrefs
                    await page.screenshot(path=str(artifacts / "xss-as-text.png"))
                    for link in await answer.get_by_role("link").all():
                        await link.click(modifiers=["Control"])  # opening them in a new tab runs nothing here
                    assert await page.evaluate("typeof window.__pwned") == "undefined"
                    for opened in page.context.pages:
                        assert await opened.evaluate("typeof window.__pwned") == "undefined"
                    assert not watch.dialogs and not watch.errors


async def test_safe_markdown_keeps_only_http_and_mailto_links(tmp_path: Path, browser: Any) -> None:
    """The renderer itself, over many hostile inputs, in the page that serves it."""
    async with LiveServer(server_app(web_settings(tmp_path))) as server:
        await make_web_setup(server.runtime)
        async with open_page(browser) as page:
            watch = PageWatch(page)
            await page.goto(server.url + "/chat/bella")
            await page.wait_for_function("window.CallableChat")
            cases: dict[str, list[str]] = await page.evaluate(
                """(inputs) => Object.fromEntries(inputs.map(text => {
                     const box = document.createElement('div');
                     window.CallableChat.renderMarkdown(text, box);
                     document.body.appendChild(box);
                     return [text, [...box.querySelectorAll('a')].map(a => a.href)
                              .concat([...box.querySelectorAll('*')].map(e => e.tagName.toLowerCase())
                                        .filter(t => !['p','br','a','strong','em','code','pre','ul','ol','li','blockquote'].includes(t)))];
                   }))""",
                [
                    "[x](javascript:window.__pwned=1)",
                    "[x](JAVASCRIPT:window.__pwned=1)",
                    "[x](java\tscript:window.__pwned=1)",
                    "[x]( javascript:window.__pwned=1 )",
                    "[x](data:text/html,<script>window.__pwned=1</script>)",
                    "[x](vbscript:msgbox)",
                    "[x](//evil.example/steal)",
                    "<javascript:window.__pwned=1>",
                    "<a href=\"javascript:window.__pwned=1\">x</a>",
                    "<svg onload=window.__pwned=1>",
                    "<iframe src=javascript:window.__pwned=1>",
                    "`<img src=x onerror=window.__pwned=1>`",
                    "**[x](javascript:window.__pwned=1)**",
                    "- [x](javascript:window.__pwned=1)\n- <img src=x onerror=window.__pwned=1>",
                    "[ok](https://example.com/a_(b)) and mailto: [mail](mailto:hi@example.com) and https://example.com/x.",
                ],
            )
            assert await page.evaluate("typeof window.__pwned") == "undefined"
            *hostile, safe = cases.values()
            assert all(found == [] for found in hostile), cases
            assert safe == ["https://example.com/a_(b)", "mailto:hi@example.com", "https://example.com/x"]
            assert not watch.dialogs


async def test_handoff_in_the_browser(tmp_path: Path, browser: Any, artifacts: Path) -> None:
    with FakeOpenAI() as fake:
        async with LiveServer(server_app(web_settings(tmp_path))) as server:
            setup = await make_web_setup(server.runtime, model_base_url=fake.base_url)
            fake.queue_reply("Let me check that for you.")
            async with open_page(browser) as page:
                watch = PageWatch(page)
                await page.goto(server.url + "/chat/bella")
                chat = page.get_by_role("region", name="Bella's Bakery")
                await ask(page, "Can I order a wedding cake?")
                await expect(chat.get_by_text("Let me check that for you.")).to_be_visible(timeout=TIMEOUT_MS)
                conversation_id = await _conversation_of(server, setup.channels["page"].id)

                await hand_off(server.runtime, setup.workspace_id, conversation_id, "wedding cake order")
                await expect(chat.get_by_role("status")).to_have_text("A person will reply here shortly.", timeout=TIMEOUT_MS)
                await send_human_reply(server.runtime, setup.workspace_id, conversation_id, "Hi, I'm **Dana**. Yes we can!", author_name="Dana")
                person = chat.locator(".msg.human")
                await expect(person).to_contain_text("Hi, I'm Dana. Yes we can!", timeout=TIMEOUT_MS)
                await expect(person.locator(".label")).to_have_text("Dana (team)")
                await page.screenshot(path=str(artifacts / "handoff-person.png"))

                await return_to_agent(server.runtime, setup.workspace_id, conversation_id)
                await expect(chat.get_by_text("The assistant is back")).to_be_visible(timeout=TIMEOUT_MS)
                await expect(chat.get_by_role("status")).to_be_hidden()
                fake.queue_reply("Anything else about your cake?")
                await ask(page, "Thanks!")
                await expect(chat.get_by_text("Anything else about your cake?")).to_be_visible(timeout=TIMEOUT_MS)
                assert not watch.errors and not watch.dialogs


async def _conversation_of(server: LiveServer, channel_id: str) -> str:
    from sqlalchemy import select

    from callable_agents.core.models import Conversation

    async with server.runtime.db.session() as session:
        found = await session.scalar(select(Conversation.id).where(Conversation.channel_id == channel_id))
    assert found is not None
    return found


async def test_the_public_page_shows_in_an_iframe_on_its_embed_origins_only(tmp_path: Path, browser: Any) -> None:
    async with LiveServer(server_app(web_settings(tmp_path))) as server:
        frame_html = f"<!doctype html><html><body><h1>Our shop</h1><iframe src='{server.url}/chat/bella'></iframe></body></html>"
        async with BusinessSite({"/embed": frame_html}) as site:
            await make_web_setup(server.runtime, page_config={"embed_origins": [site.url_on("localhost")]})
            async with open_page(browser) as page:
                await page.goto(site.url_on("localhost") + "/embed")  # on the list
                framed = page.frame_locator("iframe")
                await expect(framed.get_by_role("heading", level=1)).to_have_text("Bella's Bakery", timeout=TIMEOUT_MS)
                await expect(framed.get_by_text("Hi! Ask me about Bella's Bakery.")).to_be_visible(timeout=TIMEOUT_MS)
            async with open_page(browser) as page:
                refusals: list[str] = []
                page.on("console", lambda message: refusals.append(message.text) if "frame-ancestors" in message.text else None)
                await page.goto(site.url_on("127.0.0.1") + "/embed")  # same host, another origin: not on the list
                await expect(page.get_by_role("heading", level=1)).to_have_text("Our shop")
                for _ in range(100):
                    if refusals:
                        break
                    await page.wait_for_timeout(50)
                assert refusals and "has been blocked" in refusals[0], refusals
                assert f"frame-ancestors {site.url_on('localhost')}" in refusals[0]
                child = page.frames[1]
                assert child.url == "chrome-error://chromewebdata/"  # Chromium's error page instead of the chat
                assert "Bella" not in await child.content()


async def test_offered_choices_are_buttons_and_a_tap_answers(tmp_path: Path, browser: Any, artifacts: Path) -> None:
    with FakeOpenAI() as fake:
        async with LiveServer(server_app(web_settings(tmp_path))) as server:
            await make_web_setup(
                server.runtime, model_base_url=fake.base_url,
                tools=[{"type": "offer_choices", "name": "offer_choices", "config": {}}],
            )
            fake.queue_tool_call("offer_choices", {"text": "Which size?", "choices": ["Small", "Medium", "<b>Large</b>"]})
            fake.queue_reply("Pick the one you like.")
            async with open_page(browser, viewport={"width": 375, "height": 740}) as page:
                watch = PageWatch(page)
                await page.goto(server.url + "/chat/bella")
                chat = page.get_by_role("region", name="Bella's Bakery")
                await ask(page, "I want a cake")
                choices = chat.get_by_role("list", name="Which size?")
                await expect(choices.get_by_role("button")).to_have_count(3, timeout=TIMEOUT_MS)
                await expect(choices.get_by_role("button", name="<b>Large</b>")).to_be_visible()  # text, not markup
                await expect(chat.get_by_text("Reply with the number of your choice.")).to_have_count(0)
                await check_accessibility(page)
                await page.screenshot(path=str(artifacts / "webchat-choices.png"))
                fake.queue_reply("Medium it is.")
                await choices.get_by_role("button", name="Medium").focus()
                await page.keyboard.press("Enter")
                await expect(chat.get_by_text("Medium it is.")).to_be_visible(timeout=TIMEOUT_MS)
                user_turns = [m for m in fake.chat_requests[-1].messages if m.get("role") == "user"]
                # The tap sends the title, and the agent is told which offered choice it picks.
                assert user_turns[-1]["content"] == "Medium\n[The customer picked the choice 'Medium' (id choice-2)]"
                assert not watch.errors and not watch.dialogs
