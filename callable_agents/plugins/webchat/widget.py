"""The website widget channel: one script tag adds the agent's chat to any site.

    <script src="https://HOST/widget.js" data-channel="CHANNEL_ID" async></script>

The script (``GET /widget.js``) draws a launcher and a chat panel in a shadow root and
talks to the web chat API at ``/channels/widget/{channel_id}/...`` (see
:mod:`~callable_agents.plugins.webchat.api`). Only pages on the channel's
``allowed_origins`` get a session; the appearance (colour, title, greeting, position) comes
from the channel's configuration (:class:`~.webchat_config.WidgetConfig`).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from callable_agents.plugin import AgentRecord, ChannelRecord, ChannelType, Runtime, hookimpl
from callable_agents.plugins.webchat.api import WEB_CAPABILITIES, WebChatAPI, WebChatSurface, on_turn_started
from callable_agents.plugins.webchat.config import OriginRule, WidgetConfig
from callable_agents.plugins.webchat.preview import widget_preview

SCRIPT_RESOURCE = "static/widget.js"
SCRIPT_MAX_AGE_SECONDS = 300  # short: a fixed script reaches every site within minutes


@dataclass(frozen=True)
class StaticScript:
    body: bytes
    gzipped: bytes
    etag: str


@lru_cache(maxsize=1)
def widget_script() -> StaticScript:
    """The widget script, read and compressed once per process."""
    body = files("callable_agents.plugins.webchat").joinpath(SCRIPT_RESOURCE).read_bytes()
    return StaticScript(body, gzip.compress(body, compresslevel=9, mtime=0), f'"{hashlib.sha256(body).hexdigest()[:20]}"')


async def serve_widget_script(request: Request) -> Response:
    script = widget_script()
    headers = {
        "Cache-Control": f"public, max-age={SCRIPT_MAX_AGE_SECONDS}",
        "ETag": script.etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",  # embeddable by any site, like any script
    }
    if script.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(script.gzipped, media_type="text/javascript; charset=utf-8", headers={**headers, "Content-Encoding": "gzip"})
    return Response(script.body, media_type="text/javascript; charset=utf-8", headers=headers)


def _allowed_origins(request: Request, runtime: Runtime, config: WidgetConfig) -> list[OriginRule]:
    return config.origin_rules()


def _presentation(channel: ChannelRecord, agent: AgentRecord, config: WidgetConfig) -> dict[str, Any]:
    look = config.appearance
    greeting = look.greeting or agent.greeting or ""
    return {
        "title": look.title,
        "greeting": greeting,
        "appearance": {"color": look.color, "title": look.title, "greeting": greeting, "position": look.position},
    }


API = WebChatAPI(WebChatSurface("widget", WidgetConfig, _allowed_origins, _presentation))


def public_routes() -> list[BaseRoute]:
    return [Route("/widget.js", serve_widget_script, methods=["GET"])]


def _public_addresses(settings: Any, channel: Any) -> dict[str, str]:
    return {"script_tag": f'<script src="{settings.base_url}/widget.js" data-channel="{channel.id}" async></script>'}


@hookimpl
def register_channels() -> list[ChannelType]:
    return [
        ChannelType(
            name="widget",
            description="A chat widget on your website (one script tag)",
            config_schema=WidgetConfig,
            capabilities=WEB_CAPABILITIES,
            send=None,  # delivered by storing: the browser reads stored messages
            routes=API.routes,
            public_routes=public_routes,
            on_turn_started=on_turn_started,
            public_addresses=_public_addresses,
            title="Website widget",
            preview=widget_preview,
        )
    ]
