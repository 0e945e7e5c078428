"""The Knowledge Base section in headless Chromium: create a knowledge base, paste text, upload
two files at once and one by drag and drop, add a page of a loopback website, watch every
source become ready without reloading, run the retrieval test; no serious accessibility
violation, usable by keyboard and at 375 px. Screenshots are saved to test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.dashboard.support import add_member, check_accessibility, dashboard_server, screenshot, signed_in_page, tab_to
from tests.knowledge.conftest import Response, TestSite, html

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOURS = "Bella's Bakery opening hours.\n\nWe open at 7 in the morning on weekdays and close at 6 in the evening.\nOn Sundays the bakery is closed."

DROP_A_FILE = """([name, text]) => {
  const zone = document.querySelector("[data-dropzone]");
  const data = new DataTransfer();
  data.items.add(new File([text], name, { type: "text/plain" }));
  zone.dispatchEvent(new DragEvent("dragover", { bubbles: true, cancelable: true, dataTransfer: data }));
  zone.dispatchEvent(new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: data }));
}"""


async def no_horizontal_scroll(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    viewport = await page.evaluate("window.innerWidth")
    assert width <= viewport, f"the page is {width}px wide in a {viewport}px window"


async def test_add_every_kind_of_source_watch_them_index_and_test_retrieval(tmp_path: Path, browser: Any) -> None:
    with TestSite() as site:
        site.routes["/delivery"] = Response(
            body=html("Delivery | Bella's Bakery", "<h1>Delivery</h1><p>We deliver wedding cakes within 20 miles for $15.</p>").body,
            delay=1.0,
        )
        async with dashboard_server(tmp_path) as server:
            member = await add_member(server.runtime, name="Ann Baker")
            async with signed_in_page(browser, server, member) as page:
                await page.get_by_role("navigation", name="Sections").get_by_role("link", name="Knowledge Base").click()
                await expect(page.get_by_role("heading", name="Knowledge Base", exact=True)).to_be_visible()
                await check_accessibility(page)
                await page.get_by_role("button", name="Create").click()  # empty: refused at the field
                await expect(page.locator("#e-name")).to_have_text("name: this field is required")
                await page.get_by_label("Name").fill("Bakery FAQ")
                await page.get_by_role("button", name="Create").click()
                await expect(page.get_by_role("heading", name="Bakery FAQ")).to_be_visible()
                await page.evaluate("window.notReloaded = true")

                # The website is typed first and sent last: the adds in between answer with the
                # notice, the sources and their own form, never wiping what another form holds.
                await page.locator("#f-url").fill(site.url("/delivery"))
                await page.locator("#f-text").fill(HOURS)
                await page.get_by_role("button", name="Add the text").click()  # no title: refused, text kept
                await expect(page.locator("#e-title")).to_have_text("title: this field is required")
                await expect(page.locator("#f-title")).to_be_focused()
                await expect(page.locator("#f-text")).to_have_value(HOURS)
                await page.locator("#f-title").fill("Opening hours")
                await page.get_by_role("button", name="Add the text").click()
                notice = page.locator("#kb-detail .alert.success")
                await expect(notice).to_have_text("Added Opening hours: it is being indexed in the background.")
                await expect(notice).to_be_focused()

                await page.set_input_files(
                    "#f-files",
                    files=[
                        {"name": "cakes.md", "mimeType": "text/markdown", "buffer": b"# Cakes\n\nBirthday cakes need two days' notice."},
                        {"name": "bread.txt", "mimeType": "text/plain", "buffer": b"Sourdough loaves come out of the oven at 8:30."},
                    ],
                )
                await expect(page.get_by_text("2 file(s) chosen: cakes.md, bread.txt")).to_be_visible()
                await page.get_by_role("button", name="Upload").click()
                await expect(notice).to_have_text("Added cakes.md and bread.txt: they are being indexed in the background.")

                await page.evaluate(DROP_A_FILE, ["allergens.txt", "Every cake may contain nuts, milk and eggs."])
                await expect(page.get_by_text("1 file(s) chosen: allergens.txt")).to_be_visible()
                await page.get_by_role("button", name="Upload").click()
                # The fourth row is what says this upload landed (the URL filled before its
                # response would be wiped by the swap), and the notice names it.
                await expect(page.locator("#sources tbody tr")).to_have_count(4)
                await expect(notice).to_have_text("Added allergens.txt: it is being indexed in the background.")

                await expect(page.locator("#f-url")).to_have_value(site.url("/delivery"))
                await page.get_by_text("Crawl options").click()
                await expect(page.get_by_label("Max pages")).to_have_value("50")
                await page.get_by_role("button", name="Add the website").click()
                rows = page.locator("#sources tbody tr")
                await expect(rows).to_have_count(5)
                await expect(page.locator("#sources")).to_have_attribute("hx-trigger", "every 1s")
                await screenshot(page, "knowledge-indexing")

                await expect(page.locator("#sources tbody tr[data-status=ready]")).to_have_count(5, timeout=60_000)
                await expect(page.locator("#sources")).not_to_have_attribute("hx-trigger", "every 1s")
                assert await page.evaluate("window.notReloaded === true")  # live, not reloaded

                await page.get_by_label("Question").fill("when do you open on weekdays?")
                await page.get_by_role("button", name="Search").click()
                passages = page.locator("#search-results .passage")
                await expect(passages).to_have_count(4)
                await expect(passages.first).to_contain_text("We open at 7 in the morning")
                await expect(passages.first.locator(".passage-score")).to_have_text(re.compile(r"score \d\.\d{4}"))
                await check_accessibility(page)
                await screenshot(page, "knowledge")

                # Keyboard: a question answered with Enter, and Re-sync all reachable with Tab.
                await page.get_by_label("Question").fill("may it contain nuts or eggs?")
                await page.get_by_label("Question").press("Enter")
                await expect(passages.first).to_contain_text("nuts, milk and eggs")
                await page.locator("body").focus()
                await tab_to(page, "#resync-all", limit=120)

                # A row's action answers with the sources and the notice: the question and its passages stay.
                await page.get_by_role("button", name="Re-sync Opening hours").click()
                await expect(page.locator("#kb-notice")).to_contain_text("Re-syncing 1 source(s).")
                await expect(page.get_by_label("Question")).to_have_value("may it contain nuts or eggs?")
                await expect(passages.first).to_contain_text("nuts, milk and eggs")
                await expect(page.locator("#sources tbody tr[data-status=ready]")).to_have_count(5, timeout=60_000)

                await page.get_by_role("link", name="Knowledge Base").first.click()
                await expect(page.get_by_role("link", name="Bakery FAQ")).to_be_visible()
                await expect(page.get_by_role("row", name="Bakery FAQ")).to_contain_text("5 ready")
                await check_accessibility(page)
                await screenshot(page, "knowledge-index")


async def test_too_large_a_file_is_refused_before_uploading_and_a_failure_shows_retry_at_375px(
    tmp_path: Path, browser: Any
) -> None:
    with TestSite() as site:
        site.routes["/gone"] = Response(status=404, body=b"not found", content_type="text/plain")
        async with dashboard_server(tmp_path, max_upload_bytes=2048, max_request_bytes=4096) as server:
            member = await add_member(server.runtime)
            async with signed_in_page(browser, server, member, viewport={"width": 375, "height": 800}) as page:
                await page.goto(f"{server.url}/dashboard/knowledge")
                await page.get_by_label("Name").fill("Menu")
                await page.get_by_role("button", name="Create").click()
                await expect(page.get_by_role("heading", name="Menu")).to_be_visible()
                await page.wait_for_load_state("load")  # the page's script checks a chosen file's size
                await page.set_input_files(
                    "#f-files", files=[{"name": "catalogue.txt", "mimeType": "text/plain", "buffer": b"x" * 5000}]
                )
                await expect(page.get_by_role("alert")).to_contain_text("catalogue.txt (5,000 bytes)")
                await page.locator("#f-title").fill("Long")
                await page.locator("#f-text").fill("All our bread is baked daily. " * 200)
                await page.get_by_role("button", name="Add the text").click()
                await expect(page.locator("#flash")).to_contain_text("request body too large: the limit is 4096 bytes")
                await expect(page.locator("#f-text")).to_have_value("All our bread is baked daily. " * 200)
                await page.locator("#f-url").fill(site.url("/gone"))
                await page.get_by_role("button", name="Add the website").click()
                await expect(page.locator("#flash")).to_be_empty()  # the next post clears the old message
                failed = page.locator("#sources tbody tr[data-status=failed]")
                await expect(failed).to_have_count(1, timeout=30_000)
                await expect(failed.locator(".source-error")).to_contain_text("404")
                await expect(failed.get_by_role("button", name=f"Retry {site.url('/gone')}")).to_be_visible()
                await no_horizontal_scroll(page)
                await check_accessibility(page)
                await screenshot(page, "knowledge-375")

                site.routes["/gone"] = html("Menu", "<p>Rye bread costs four dollars.</p>")
                await failed.get_by_role("button", name=f"Retry {site.url('/gone')}").click()
                await expect(page.locator("#sources tbody tr[data-status=ready]")).to_have_count(1, timeout=60_000)
