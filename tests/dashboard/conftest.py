"""The dashboard's tests use the browser fixtures of tests/browser (one Chromium a run)."""

from tests.browser.conftest import artifacts, browser  # noqa: F401  (fixtures, registered by import)
