"""The dashboard's Jinja2 environment, the page layout and its error pages.

Every page extends ``base.html`` (the left nav, the signed-in person, the CSRF token that
HTMX sends as ``X-CSRF-Token`` on every request it makes). Autoescaping is on for every
template: customer, model and knowledge text is text wherever it shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from callable_agents.core.store.users import SignedIn


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    path: str


NAV: tuple[NavItem, ...] = (
    NavItem("agents", "Agents", "/dashboard/agents"),
    NavItem("knowledge", "Knowledge Base", "/dashboard/knowledge"),
    NavItem("tools", "Tools", "/dashboard/tools"),
    NavItem("integrations", "Integrations", "/dashboard/integrations"),
    NavItem("channels", "Channels", "/dashboard/channels"),
    NavItem("conversations", "Conversations", "/dashboard/conversations"),
    NavItem("settings", "Settings", "/dashboard/settings"),
)

_environment: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    """The one Jinja2 environment (templates compiled once per process)."""
    global _environment
    if _environment is None:
        templates = files("callable_agents.dashboard").joinpath("templates")
        _environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
    return _environment


def is_htmx(request: Request) -> bool:
    """An HTMX request wants a fragment, not a whole page."""
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` with the request's viewer, the nav and the CSRF token."""
    viewer: SignedIn | None = getattr(request.state, "viewer", None)
    values: dict[str, Any] = {
        "request": request,
        "viewer": viewer,
        "nav": NAV,
        "section": "",
        "csrf_token": viewer.csrf_token if viewer else "",
        "htmx": is_htmx(request),
    }
    values.update(context or {})
    body = environment().get_template(template).render(values)
    return HTMLResponse(body, status_code=status_code, headers=headers)


def error_page(request: Request, status_code: int, message: str) -> Response:
    """An error as the dashboard shows it: in the layout for a page, a fragment for HTMX."""
    template = "error_fragment.html" if is_htmx(request) else "error.html"
    response = render(request, template, {"status_code": status_code, "message": message}, status_code=status_code)
    if is_htmx(request):
        # HTMX swaps nothing on a 4xx unless told to: show the message where the form asked.
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
    return response
