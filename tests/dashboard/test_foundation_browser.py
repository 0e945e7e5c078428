"""The dashboard's frame in headless Chromium: sign in, the left nav, Settings; no serious
accessibility violation, reachable by keyboard, usable at 375 px. Screenshots are saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.dashboard.support import (
    PASSWORD,
    add_member,
    check_accessibility,
    dashboard_server,
    screenshot,
    signed_in_page,
    tab_to,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECTIONS = ["Agents", "Knowledge Base", "Tools", "Integrations", "Channels", "Conversations", "Settings"]


async def test_sign_in_then_every_section_is_one_click_away(tmp_path: Path, browser: Any) -> None:
    async with dashboard_server(tmp_path) as server:
        member = await add_member(server.runtime, name="Ann Baker")
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            page = await context.new_page()
            await page.goto(f"{server.url}/dashboard/settings")
            await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            await check_accessibility(page)
            await screenshot(page, "sign-in")
            await page.get_by_label("E-mail").fill(member.email)
            await page.get_by_label("Password").fill("wrong password")
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_text("The e-mail or the password is wrong.")).to_be_visible()
            await expect(page.get_by_label("E-mail")).to_have_value(member.email)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
            nav = page.get_by_role("navigation", name="Sections")
            for label in SECTIONS:
                await expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
            await expect(nav.get_by_role("link", name="Settings")).to_have_attribute("aria-current", "page")
            await page.get_by_role("link", name="Callable Agents").click()
            await expect(page.get_by_role("heading", name="Set up")).to_be_visible()
            await check_accessibility(page)
            await screenshot(page, "overview")
        finally:
            await context.close()


async def test_settings_by_keyboard_creates_a_key_shown_once(tmp_path: Path, browser: Any) -> None:
    async with dashboard_server(tmp_path) as server:
        member = await add_member(server.runtime, name="Ann Baker")
        async with signed_in_page(browser, server, member) as page:
            await page.goto(f"{server.url}/dashboard/settings")
            await tab_to(page, "#f-name")
            await page.keyboard.type("CRM sync")
            await page.keyboard.press("Enter")
            await expect(page.get_by_text("it is shown once")).to_be_visible()
            key = await page.locator("#copy-api-key").text_content()
            assert key and key.startswith("ca_")
            await check_accessibility(page)
            await screenshot(page, "settings")
            await page.reload()
            await expect(page.get_by_text("it is shown once")).to_have_count(0)


async def test_the_frame_works_on_a_phone(tmp_path: Path, browser: Any) -> None:
    async with dashboard_server(tmp_path) as server:
        member = await add_member(server.runtime)
        async with signed_in_page(browser, server, member, viewport={"width": 375, "height": 740}) as page:
            await page.goto(f"{server.url}/dashboard/settings")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"the page is {width}px wide at 375px"
            await expect(page.get_by_role("navigation", name="Sections").get_by_role("link", name="Agents")).to_be_visible()
            await check_accessibility(page)
            await screenshot(page, "settings-phone")
