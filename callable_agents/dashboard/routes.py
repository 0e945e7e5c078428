"""Every dashboard route, under ``/dashboard``, and its vendored static files."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from callable_agents.dashboard import (
    account,
    agents,
    channels,
    conversations,
    integrations,
    knowledge,
    overview,
    settings_page,
    tools,
)

SECTIONS = (account, overview, agents, knowledge, tools, integrations, channels, conversations, settings_page)


def dashboard_routes() -> list[BaseRoute]:
    """Mounted by the server at the root: ``/dashboard/...`` and ``/dashboard/static/...``."""
    pages: list[BaseRoute] = [
        Mount("/static", app=StaticFiles(packages=[("callable_agents.dashboard", "static")]), name="dashboard-static")
    ]
    for section in SECTIONS:
        pages.extend(section.routes())
    # /dashboard itself is the overview (no redirect to /dashboard/).
    return [Route("/dashboard", overview.overview, methods=["GET"]), Mount("/dashboard", routes=pages)]
