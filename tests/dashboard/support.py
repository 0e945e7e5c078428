"""What the dashboard's tests share: a running server, people who sign in, forms with their
CSRF token, and a signed-in browser page with its accessibility check and screenshot.

Everything is real: the server is uvicorn on 127.0.0.1 with the worker on, people are
created through the user store with Argon2 hashes, requests carry the session cookie the
sign-in form set, and pages run in headless Chromium.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page

from callable_agents.core.runtime import Runtime
from callable_agents.core.store.users import create_user, hash_password
from callable_agents.core.store.workspaces import ensure_workspace, slugify
from callable_agents.dashboard.guard import SESSION_COOKIE
from tests.plugins.webchat_support import LiveServer, server_app, web_settings

PASSWORD = "a long enough password"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass(frozen=True)
class Member:
    workspace_id: str
    workspace_slug: str
    user_id: str
    email: str
    password: str
    role: str


@asynccontextmanager
async def dashboard_server(tmp_path: Path, **overrides: Any) -> AsyncIterator[LiveServer]:
    """The real server (worker on, no burst window) on a fresh migrated SQLite file."""
    async with LiveServer(server_app(web_settings(tmp_path, **overrides))) as server:
        yield server


async def add_member(
    runtime: Runtime, workspace: str = "Bella's Bakery", *, email: str = "owner@example.com", role: str = "owner", name: str = ""
) -> Member:
    """A workspace (made if missing) and a person in it who can sign in with :data:`PASSWORD`."""
    async with runtime.db.session() as session:
        found = await ensure_workspace(session, runtime.vault, workspace, slugify(workspace))
        user = await create_user(session, found.id, email=email, name=name, role=role, password_hash=hash_password(PASSWORD))
        return Member(found.id, found.slug, user.id, user.email, PASSWORD, role)


class DashboardClient:
    """An HTTP client signed in through the sign-in form; ``post`` adds the CSRF token."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client
        self.csrf_token = ""

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.get(path, **kwargs)
        found = re.search(r'<meta name="csrf-token" content="([^"]+)"', response.text)
        if found:
            self.csrf_token = found.group(1)
        return response

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any) -> httpx.Response:
        if csrf and not self.csrf_token:
            await self.get("/dashboard")
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf_token", self.csrf_token)
        return await self.http.post(path, data=body, **kwargs)

    @property
    def session_cookie(self) -> str:
        return self.http.cookies.get(SESSION_COOKIE) or ""


async def sign_in_form(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    """Fill in the sign-in form as a browser does (its form token cookie and field)."""
    page = await client.get("/dashboard/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    return await client.post(
        "/dashboard/sign-in", data={"csrf_token": token.group(1), "email": email, "password": password, "next": "/dashboard"}
    )


@asynccontextmanager
async def signed_in_client(server: LiveServer, member: Member) -> AsyncIterator[DashboardClient]:
    async with httpx.AsyncClient(base_url=server.url, follow_redirects=False, timeout=20) as client:
        response = await sign_in_form(client, member.email, member.password)
        assert response.status_code == 303, response.text[:500]
        yield DashboardClient(client)


@asynccontextmanager
async def signed_in_page(browser: Any, server: LiveServer, member: Member, **options: Any) -> AsyncIterator[Page]:
    """A browser page whose context is signed in as ``member`` (through the sign-in form)."""
    options.setdefault("viewport", {"width": 1280, "height": 860})
    context = await browser.new_context(**options)
    try:
        page = await context.new_page()
        await page.goto(f"{server.url}/dashboard/sign-in")
        await page.get_by_label("E-mail").fill(member.email)
        await page.get_by_label("Password").fill(member.password)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{server.url}/dashboard")
        yield page
    finally:
        await context.close()


async def check_accessibility(page: Page) -> None:
    """axe-core (vendored in axe-playwright-python) finds no serious or critical violation."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}" for v in bad
    )


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save ``test-artifacts/dashboard-<name>.png`` (the README shows some of them)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def tab_to(page: Page, selector: str, *, limit: int = 80) -> None:
    """Press Tab until the element ``selector`` has focus (it is reachable by keyboard)."""
    target = page.locator(selector).first
    for _ in range(limit):
        if await target.evaluate("node => node === document.activeElement"):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"{selector} was not reached with {limit} presses of Tab")
