"""``/dashboard/channels``: the Channels section (being built; this module is replaced by its page)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from callable_agents.core.store.users import SignedIn
from callable_agents.dashboard.guard import page
from callable_agents.dashboard.rendering import render


@page
async def index(request: Request, viewer: SignedIn) -> Response:
    return render(request, "section_pending.html", {"section": "channels", "title": "Channels"})


def routes() -> list[BaseRoute]:
    return [Route("/channels", index, methods=["GET"])]
