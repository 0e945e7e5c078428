"""The public chat page channel: a shareable full-page chat at ``/chat/{slug}``.

The page carries the business's name and greeting, rendered on the server (a Jinja2
template, autoescaped), and runs the widget script in full-page mode against the same web
chat API at ``/channels/page/{channel_id}/...``. Its API answers only the server's own
origin: the page is the one client. The slug is the channel's ``slug``; the title, greeting
and colour come from its configuration (:class:`~.webchat_config.PageConfig`), defaulting
to the agent's business name and greeting.

**Framing.** The page says itself who may show it in an iframe: its Content-Security-Policy
carries ``frame-ancestors`` with the channel's ``embed_origins`` (``'none'`` when empty, the
default), so a business can put its page on its own site and nobody else can frame it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.plugin import (
    SLUG_PATTERN,
    AgentRecord,
    ChannelRecord,
    ChannelType,
    Runtime,
    hookimpl,
    read_public_page,
    runtime_of,
)
from callable_agents.plugins.webchat.api import (
    WEB_CAPABILITIES,
    WebChatAPI,
    WebChatSurface,
    on_turn_started,
    own_origins,
)
from callable_agents.plugins.webchat.config import OriginRule, PageConfig
from callable_agents.plugins.webchat.preview import page_preview

# The page needs its own script and API only; styles are inline (the template's and the
# widget's shadow root), and nothing on it comes from elsewhere but linked images.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' https: data:; base-uri 'none'; form-action 'none'"
)


def frame_ancestors(embed_origins: list[str]) -> str:
    """The directive naming who may frame the page (origins are validated by PageConfig,
    so they hold no spaces or semicolons)."""
    return "frame-ancestors " + (" ".join(embed_origins) if embed_origins else "'none'")


def page_headers(embed_origins: list[str]) -> dict[str, str]:
    return {
        "Content-Security-Policy": f"{CONTENT_SECURITY_POLICY}; {frame_ancestors(embed_origins)}",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Cache-Control": "no-cache",
    }


PAGE_HEADERS = page_headers([])  # for answers that are not a channel's page: framed by nobody


@lru_cache(maxsize=1)
def templates() -> Environment:
    return Environment(
        loader=PackageLoader("callable_agents.plugins.webchat", "templates"),
        autoescape=select_autoescape(["html"], default=True),
        auto_reload=False,
    )


def business_name(channel: ChannelRecord, agent: AgentRecord, config: PageConfig) -> str:
    """What the page is titled: the configured title, else the business's or agent's name."""
    name = (agent.business_info or {}).get("name")
    return config.title or (str(name).strip() if name else "") or agent.name


def _text_on(color: str) -> str:
    """Black or white, whichever reads better on ``color`` (#RRGGBB)."""
    red, green, blue = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))

    def linear(value: float) -> float:
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)
    return "#111111" if luminance > 0.35 else "#ffffff"


def _allowed_origins(request: Request, runtime: Runtime, config: PageConfig) -> list[OriginRule]:
    return own_origins(request, runtime)


def _presentation(channel: ChannelRecord, agent: AgentRecord, config: PageConfig) -> dict[str, Any]:
    title = business_name(channel, agent, config)
    greeting = config.greeting or agent.greeting or ""
    return {
        "title": title,
        "greeting": greeting,
        "appearance": {"color": config.color, "title": title, "greeting": greeting, "position": "inline"},
    }


API = WebChatAPI(
    WebChatSurface(
        "page",
        PageConfig,
        _allowed_origins,
        _presentation,
        origin_hint="a public page's chat answers only the page itself (embed a widget channel elsewhere)",
    )
)


def _not_found() -> Response:
    return HTMLResponse(
        "<!doctype html><html lang=en><meta charset=utf-8><title>Chat not found</title>"
        "<h1>Chat not found</h1><p>This chat page does not exist or is switched off.</p></html>",
        status_code=404,
        headers=PAGE_HEADERS,
    )


async def chat_page(request: Request) -> Response:
    slug = request.path_params["slug"]
    if not SLUG_PATTERN.match(slug):
        return _not_found()
    runtime = runtime_of(request)
    found = await read_public_page(runtime, slug)
    channel, agent = found if found is not None else (None, None)
    if channel is None or agent is None or channel.kind != "page" or not channel.enabled:
        return _not_found()
    try:
        config = PageConfig.model_validate(channel.config or {})
    except ValidationError:
        return HTMLResponse("This chat is not available right now.", status_code=503, headers=PAGE_HEADERS)
    description = (agent.business_info or {}).get("description")
    html = templates().get_template("chat_page.html").render(
        title=business_name(channel, agent, config),
        description=str(description)[:300] if description else "",
        greeting=config.greeting or agent.greeting or "",
        color=config.color,
        on_color=_text_on(config.color),
        channel_id=channel.id,
        script_url=request.scope.get("root_path", "") + "/widget.js",
        root_path=request.scope.get("root_path", ""),
    )
    return HTMLResponse(html, headers=page_headers(config.embed_origins))


def public_routes() -> list[BaseRoute]:
    return [Route("/chat/{slug}", chat_page, methods=["GET"])]


def _public_addresses(settings: Any, channel: Any) -> dict[str, str]:
    return {"page_url": f"{settings.base_url}/chat/{channel.slug}"} if channel.slug else {}


@hookimpl
def register_channels() -> list[ChannelType]:
    return [
        ChannelType(
            name="page",
            description="A public chat page at /chat/{slug}, shareable as a link",
            config_schema=PageConfig,
            capabilities=WEB_CAPABILITIES,
            send=None,  # delivered by storing: the browser reads stored messages
            routes=API.routes,
            public_routes=public_routes,
            on_turn_started=on_turn_started,
            public_addresses=_public_addresses,
            public_slug=True,
            title="Public chat page",
            preview=page_preview,
        )
    ]
