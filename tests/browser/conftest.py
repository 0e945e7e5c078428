"""Browser fixtures: headless Chromium through Playwright.

The tests use the system's Chromium (``/usr/bin/chromium``; ``scripts/ensure-test-services``
installs Debian's package when it is missing), not a browser Playwright downloads, so they
need no network. Without it they skip and say why; under CI (``CI=true``) they fail.
Screenshots go to ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EXPECT_TIMEOUT_MS = 15_000


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    """One Chromium for the run (tests open their own contexts); tests using it run in the
    session's event loop (``pytestmark = pytest.mark.asyncio(loop_scope="session")``)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: install Debian's chromium (`scripts/ensure-test-services` does as root)"
        if IN_CI:
            pytest.fail(f"CI=true requires the browser tests to run: {reason}")
        pytest.skip(reason)
    from playwright.async_api import async_playwright, expect

    # Playwright's 5 s default for an assertion to come true is short for a suite that runs
    # on two workers beside live servers: a page that is right but slow would fail. It only
    # bounds the wait; an assertion that never comes true still fails.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
