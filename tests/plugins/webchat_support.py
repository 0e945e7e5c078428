"""Helpers for the web chat tests: a live server, web channels, a business site, SSE reading.

The server is the real app (``create_app``) served by uvicorn on a free loopback port, in
the test's own event loop, so a test can reach the server's runtime (``server.runtime``)
to hand a conversation off while a browser or an HTTP client watches the stream.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from callable_agents.core.config import Settings, async_database_url
from callable_agents.core.db import migrate_sync
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.knowledge import add_source, create_knowledge_base, ingest_source
from callable_agents.core.models import Agent, Channel
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.workspaces import create_workspace
from callable_agents.server import create_app
from tests.conftest import make_settings


def free_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


class LiveServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in the current event loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._socket = free_socket()
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2, access_log=False)
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_on(self, host: str) -> str:
        return f"http://{host}:{self.port}"

    @property
    def runtime(self) -> Runtime:
        return self.app.state.runtime  # type: ignore[no-any-return]

    async def __aenter__(self) -> LiveServer:
        self._task = asyncio.create_task(self.server.serve(sockets=[self._socket]))
        for _ in range(1000):
            if self.server.started:
                return self
            if self._task.done():
                self._task.result()  # raises the start-up error
                raise RuntimeError("the server stopped during start-up")
            await asyncio.sleep(0.01)
        raise TimeoutError("the server did not start within 10 s")

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout=15)
        self._socket.close()


_template_database: Path | None = None


def _migrated_sqlite_copy(target: Path) -> str:
    """A migrated SQLite file at ``target``, copied from one migrated once per test run
    (migrating takes about a second; these tests start many servers)."""
    global _template_database
    if _template_database is None:
        template = Path(tempfile.mkdtemp(prefix="callable-webchat-")) / "template.db"
        migrate_sync(async_database_url(f"sqlite:///{template}"))
        atexit.register(shutil.rmtree, template.parent, True)
        _template_database = template
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template_database, target)
    return f"sqlite:///{target}"


def web_settings(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    """Settings for a server that answers at once: worker on, a migrated
    database (a fresh SQLite file unless ``database_url`` names one, which gets migrated)."""
    values: dict[str, Any] = {"run_worker": True, "auto_migrate": database_url is not None}
    values.update(overrides)
    url = database_url or _migrated_sqlite_copy(tmp_path / "data" / "callable.db")
    return make_settings(tmp_path / "data", url, **values)


@dataclass
class WebSetup:
    workspace_id: str
    agent: Agent
    channels: dict[str, Channel] = field(default_factory=dict)


async def make_web_setup(
    runtime: Runtime,
    *,
    widget_config: dict[str, Any] | None = None,
    page_config: dict[str, Any] | None = None,
    page_slug: str = "bella",
    model_base_url: str | None = None,
    knowledge_urls: tuple[str, ...] = (),
    knowledge_texts: tuple[tuple[str, str], ...] = (),
    greeting: str = "Hi! Ask me about Bella's Bakery.",
    tools: list[dict[str, Any]] | None = None,
    extra_widgets: dict[str, dict[str, Any]] | None = None,
) -> WebSetup:
    """A workspace with a chat agent, a widget and a page channel; a model at
    ``model_base_url`` (an OpenAI integration) or offline mode; knowledge from URLs/texts."""
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, "Bella's Bakery")
        model_settings: dict[str, Any] = {}
        if model_base_url is not None:
            await connect_integration(
                session,
                runtime.vault,
                workspace,
                provider="openai",
                name="openai",
                public={"base_url": model_base_url},
                secrets={"api_key": "sk-test-webchat"},
            )
            model_settings = {"integration": "openai", "model": "gpt-4o-mini", "max_retries": 0, "timeout": 10}
        knowledge_base_ids: list[str] = []
        source_ids: list[str] = []
        if knowledge_urls or knowledge_texts:
            knowledge_base = await create_knowledge_base(session, workspace.id, "site", runtime=runtime)
            knowledge_base_ids.append(knowledge_base.id)
            for url in knowledge_urls:
                source = await add_source(
                    session, workspace.id, knowledge_base.id, runtime=runtime, kind="url", location=url, options={"mode": "page"}
                )
                source_ids.append(source.id)
            for title, text in knowledge_texts:
                source = await add_source(
                    session, workspace.id, knowledge_base.id, runtime=runtime, kind="text", title=title, content=text.encode()
                )
                source_ids.append(source.id)
        agent = Agent(
            workspace_id=workspace.id,
            name="assistant",
            system_prompt="You are the assistant of Bella's Bakery.",
            business_info={"name": "Bella's Bakery", "description": "Fresh bread on Main Street since 1990."},
            model_settings=model_settings,
            tools=tools or [],
            knowledge_base_ids=knowledge_base_ids,
            greeting=greeting,
            fallback_message="Sorry, something went wrong on our side. Please try again.",
        )
        session.add(agent)
        await session.flush()
        setup = WebSetup(workspace_id=workspace.id, agent=agent)
        widgets = {"widget": widget_config or {}, **(extra_widgets or {})}
        for name, config in widgets.items():
            channel = Channel(workspace_id=workspace.id, kind="widget", name=name, agent_id=agent.id, config=config)
            session.add(channel)
            setup.channels[name] = channel
        page = Channel(
            workspace_id=workspace.id, kind="page", name="page", agent_id=agent.id, slug=page_slug, config=page_config or {}
        )
        session.add(page)
        setup.channels["page"] = page
    for source_id in source_ids:
        source = await ingest_source(runtime, workspace.id, source_id)
        assert source.status == "ready", f"source {source.location or source.title}: {source.error}"
    return setup


class BusinessSite:
    """A second loopback origin: the business's own site, embedding the widget.

    ``GET /`` is a page with the widget's script tag (``configure`` sets its channel and
    API); other paths serve ``pages`` (e.g. the page the knowledge base indexes).
    """

    def __init__(self, pages: dict[str, str] | None = None) -> None:
        self.pages = pages or {}
        self.embed: dict[str, str] = {}
        self.server = LiveServer(
            Starlette(routes=[Route("/", self._home), Route("/robots.txt", self._robots), Route("/{path:path}", self._page)])
        )

    @property
    def port(self) -> int:
        return self.server.port

    def url_on(self, host: str) -> str:
        return self.server.url_on(host)

    def configure(self, *, api: str, channel_id: str) -> None:
        self.embed = {"api": api, "channel_id": channel_id}

    async def _home(self, request: Request) -> Response:
        if not self.embed:
            return PlainTextResponse("not configured", 500)
        return HTMLResponse(
            "<!doctype html><html lang=en><head><meta charset=utf-8><title>Bella's Bakery</title>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            # The site's own CSS must not reach into the widget (and the widget's not out); its colours
            # stay readable so the axe check judges the widget, not this stand-in site.
            "<style>button{background:#ff00ff!important;font-size:40px!important} li{color:#0b5d1e}</style></head>"
            "<body><h1>Bella's Bakery</h1><p>Fresh bread every day.</p><ul><li>Site list item</li></ul>"
            f"<script src=\"{self.embed['api']}/widget.js\" data-channel=\"{self.embed['channel_id']}\" async></script>"
            "</body></html>"
        )

    async def _robots(self, request: Request) -> Response:
        return PlainTextResponse("User-agent: *\nAllow: /\n")

    async def _page(self, request: Request) -> Response:
        body = self.pages.get("/" + request.path_params["path"])
        if body is None:
            return PlainTextResponse("not found", 404)
        return HTMLResponse(body)

    async def __aenter__(self) -> BusinessSite:
        await self.server.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.__aexit__(*exc)


HOURS_PAGE = (
    "<!doctype html><html><head><title>Opening hours</title></head><body><main>"
    "<h1>Opening hours</h1><p>Bella's Bakery opens at 7:00 from Monday to Saturday and closes at 18:00. "
    "On Sundays the bakery is closed.</p><p>Sourdough loaves come out of the oven at 8:30 every morning.</p>"
    "</main></body></html>"
)


def server_app(settings: Settings) -> Any:
    return create_app(settings)


@dataclass
class SSEEvent:
    event: str
    data: dict[str, Any]


class EventReader:
    """Reads server-sent events from one open streaming response, across several waits."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.aiter_text()
        self._buffer = ""

    async def until(self, done: Callable[[list[SSEEvent]], bool], *, timeout: float = 15) -> list[SSEEvent]:
        """The events read until ``done(events read by this call)`` holds."""
        events: list[SSEEvent] = []

        async def read() -> None:
            while True:
                while "\n\n" in self._buffer:
                    block, self._buffer = self._buffer.split("\n\n", 1)
                    name, data = "message", ""
                    for line in block.split("\n"):
                        if line.startswith("event:"):
                            name = line[6:].strip()
                        elif line.startswith("data:"):
                            data += line[5:].lstrip(" ")
                    if data:
                        events.append(SSEEvent(name, json.loads(data)))
                        if done(events):
                            return
                self._buffer += await self._chunks.__anext__()

        await asyncio.wait_for(read(), timeout=timeout)
        return events
