"""The Starlette app factory: channel routes, admin API, dashboard, health endpoints.

Plugins load when the app is created (their routes are part of the app); the database, the
vault and background workers open in the lifespan and close with it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.config import Settings, load_settings
from callable_agents.core.errors import CallableError, InvalidInput
from callable_agents.core.store.agent_spec import SpecError, format_loc
from callable_agents.core.jobs import STOP_GRACE_SECONDS, worker_of
from callable_agents.core.observability.endpoint import metrics_route, start_metrics_server
from callable_agents.core.observability.pipeline import ChannelRequests
from callable_agents.core.observability.tracing import configure_tracing_from_env
from callable_agents.core.plugins import Plugins, load_plugins
from callable_agents.core.runtime import Runtime, runtime_of
from callable_agents.core.store.key_rotation import workspaces_the_key_cannot_open
from callable_agents.security_headers import SecurityHeaders

log = logging.getLogger(__name__)

class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before they are read into memory.

    Paths matching one of ``upload_paths`` (file uploads, spooled to disk by the form
    parser) may send up to ``upload_bytes`` instead; their handler checks each file.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, upload_bytes: int = 0, upload_paths: Sequence[re.Pattern[str]] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = max(upload_bytes, max_bytes)
        self.upload_paths = tuple(upload_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = scope.get("state", {}).get("max_body_bytes") or self.max_bytes
        if any(pattern.fullmatch(scope["path"]) for pattern in self.upload_paths):
            limit = self.upload_bytes
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                await self._refuse(scope, receive, send, limit)
                return
            # The server stops a body at its declared length, so this one fits: nothing to count.
            await self.app(scope, receive, send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        message = f"request body too large: the limit is {limit} bytes"
        response: Response
        if scope["path"].startswith("/api/"):
            response = JSONResponse({"error": {"message": message}}, status_code=413)
        else:
            response = PlainTextResponse(message, status_code=413)
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        migrated = await asyncio.wait_for(runtime.db.is_migrated(), timeout=5)
    except Exception as exc:  # report, don't crash: a probe must always get an answer
        return JSONResponse({"status": "unavailable", "reason": f"database unreachable: {type(exc).__name__}"}, 503)
    if not migrated:
        return JSONResponse({"status": "unavailable", "reason": "database not migrated: run `callable migrate`"}, 503)
    unreadable = getattr(request.app.state, "unreadable_workspaces", [])
    if unreadable:
        reason = (
            f"the master key cannot open the data key of {len(unreadable)} workspace(s): start the server with "
            "the master key they were created with (see the server log)"
        )
        return JSONResponse({"status": "unavailable", "reason": reason}, 503)
    return JSONResponse({"status": "ready"})


FAVICON_RESOURCE = "static/favicon.svg"


async def favicon(request: Request) -> Response:
    """The site icon (a small vendored SVG), so no page's browser console shows a 404 for it.

    Served at ``/favicon.ico`` (where browsers look unasked) and linked from the pages.
    """
    from importlib.resources import files

    body = files("callable_agents").joinpath(FAVICON_RESOURCE).read_bytes()
    return Response(body, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


async def home(request: Request) -> Response:
    """A signed-in person goes to the dashboard; anyone else sees where to go."""
    from callable_agents.dashboard.guard import signed_in
    from callable_agents.dashboard.rendering import render

    if await signed_in(request) is not None:
        return RedirectResponse("/dashboard", status_code=303)
    return render(request, "home.html", {"links": getattr(request.app.state, "home_links", [])})


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _is_dashboard(request: Request) -> bool:
    return request.url.path.startswith("/dashboard")


def _dashboard_error(request: Request, status_code: int, message: str) -> Response:
    from callable_agents.dashboard.rendering import error_page

    return error_page(request, status_code, message)


async def callable_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CallableError)
    message = str(exc)
    if exc.status_code >= 500:
        # The server's own trouble: the operator reads the details in the log; the caller
        # learns nothing internal (workspace names, key fingerprints, module names).
        log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, message)
        message = "internal server error" if exc.status_code == 500 else "the server is not ready: try again later"
    if _is_api(request):
        error: dict[str, Any] = {"message": message, "type": type(exc).__name__}
        if isinstance(exc, InvalidInput) and exc.field:
            error["field"] = exc.field
        if isinstance(exc, SpecError) and len(exc.problems) > 1:  # every field at fault, each on its own
            error["problems"] = [{"field": format_loc(p.loc), "message": p.message} for p in exc.problems]
        return JSONResponse({"error": error}, exc.status_code)
    if _is_dashboard(request):
        response = _dashboard_error(request, exc.status_code, message)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response
    return PlainTextResponse(message, exc.status_code)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _is_api(request):
        return JSONResponse({"error": {"message": exc.detail}}, exc.status_code, headers=exc.headers)
    if _is_dashboard(request):
        return _dashboard_error(request, exc.status_code, str(exc.detail))
    return PlainTextResponse(str(exc.detail), exc.status_code, headers=exc.headers)


DATABASE_BUSY_RETRY_AFTER_SECONDS = 2


def _database_busy(exc: Exception) -> bool:
    """A database that is locked (SQLite) or out of reach: the request may succeed later."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


async def server_error_handler(request: Request, exc: Exception) -> Response:
    if _database_busy(exc):
        # Nothing was stored: the caller (Twilio, the widget, a script) retries after the pause.
        log.warning("database busy or unreachable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        message = "the server is busy: try again in a moment"
        headers = {"Retry-After": str(DATABASE_BUSY_RETRY_AFTER_SECONDS)}
        if _is_api(request) or request.url.path.startswith("/channels/"):
            return JSONResponse({"error": {"message": message}}, 503, headers=headers)
        return PlainTextResponse(message, 503, headers=headers)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    if _is_api(request):
        return JSONResponse({"error": {"message": "internal server error"}}, 500)
    if _is_dashboard(request):
        return _dashboard_error(request, 500, "internal server error: the details are in the server's log")
    return PlainTextResponse("internal server error", 500)


def keep_startup_out_of_gc() -> None:
    """Collect, then freeze every object alive (gc.freeze): call once a long-lived process
    (``callable serve``, ``callable worker``) has started.

    What startup loaded (libraries, plugins, the runtime) lives as long as the process, and
    the garbage collector's full passes would walk all of it again and again: about 120 ms
    a pass in a worker, a reply held up that long whenever one falls on its turn. Frozen,
    those passes skip it. The collection first, so nothing unreachable is frozen.
    """
    gc.collect()
    gc.freeze()


async def prepare_for_turns(runtime: Runtime) -> None:
    """Set up what a worker's first turn would otherwise: the compiled graph with its
    checkpointer, and the process's HTTP client (its TLS context).

    A process that runs turns (``callable worker``, ``callable serve`` with its worker) calls
    it before its worker claims anything (a process that fails here holds no job until its
    lease expires) and before :func:`keep_startup_out_of_gc`, so they are frozen with the
    rest. The first reply after a worker started took 280-370 ms, now about 180-280 (the
    rest is what a first turn still does once: the first statements compiled, connections
    opened).
    """
    from callable_agents.core.conversation.turn.run import compiled_graph
    from callable_agents.core.http_safety import shared_http_client

    await compiled_graph(runtime)
    shared_http_client(runtime)


def start_background_work(runtime: Runtime) -> list[asyncio.Task[None]]:
    """The job handlers and the live events (with their relay to the other processes)
    always; the worker and knowledge refresh unless ``run_worker`` is off."""
    from callable_agents.core.conversation.streams import StreamHub
    from callable_agents.core.jobs import start_worker, wake_worker
    from callable_agents.core.conversation.jobs import register_conversation_jobs

    from callable_agents.core.conversation.turn.superseding import RunningTurns

    register_conversation_jobs(runtime)
    RunningTurns.of(runtime)  # the live events' hub and its relay: listening from the start
    # Work queued in another process (a webhook's message, a person's reply) wakes this
    # process's worker at once, not at its next poll.
    StreamHub.of(runtime).on_work(lambda: wake_worker(runtime))
    if not runtime.settings.run_worker:
        return []
    tasks = [start_worker(runtime)]
    from callable_agents.core.knowledge import start_refresh_loop

    refresh = start_refresh_loop(runtime)
    if refresh is not None:
        tasks.append(refresh)
    return tasks


def channel_routes(plugins: Plugins) -> tuple[list[BaseRoute], list[BaseRoute]]:
    """Each channel type's routes mounted at ``/channels/{name}``, and its root-level routes."""
    mounted: list[BaseRoute] = []
    public: list[BaseRoute] = []
    for channel_type in plugins.channels:
        if channel_type.routes is not None:
            mounted.append(Mount(f"/channels/{channel_type.name}", routes=list(channel_type.routes())))
        if channel_type.public_routes is not None:
            public.extend(channel_type.public_routes())
    return mounted, public


def create_app(
    settings: Settings | None = None,
    *,
    extra_plugins: Iterable[tuple[str, object]] = (),
    extra_routes: Iterable[BaseRoute] = (),
    home_links: Iterable[tuple[str, str]] = (),
) -> Starlette:
    """Build the server app. Loading plugins here means a broken plugin fails before serving."""
    settings = settings or load_settings()
    plugins = load_plugins(autoload=not settings.disable_plugin_autoload, extra=extra_plugins)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        configure_tracing_from_env()
        runtime = await open_runtime(settings, plugins=plugins)
        app.state.runtime = runtime
        app.state.unreadable_workspaces = await workspaces_the_key_cannot_open(runtime.db, runtime.vault)
        if app.state.unreadable_workspaces:
            log.error(
                "the master key cannot open the data key of workspace(s) %s: their secrets cannot be read and "
                "/readyz answers 503. Start with the master key they were created with (CALLABLE_MASTER_KEY or "
                "the data dir's master.key), or set CALLABLE_PREVIOUS_MASTER_KEY to it during a rotation.",
                ", ".join(app.state.unreadable_workspaces),
            )
        if settings.run_worker:  # before the worker's first claim (see prepare_for_turns)
            await prepare_for_turns(runtime)
        tasks = start_background_work(runtime)
        metrics_server = await start_metrics_server(runtime)
        keep_startup_out_of_gc()
        try:
            yield
        finally:
            if metrics_server is not None:
                metrics_server.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            worker = worker_of(runtime)
            if worker is not None:  # before the HTTP clients its sends use are closed
                await worker.stop(grace_seconds=STOP_GRACE_SECONDS)
            await close_runtime(runtime)

    from callable_agents.api.knowledge import API_UPLOAD_PATHS, api_upload_body_limit
    from callable_agents.api.routes import admin_routes
    from callable_agents.dashboard.knowledge import KNOWLEDGE_UPLOAD_PATHS, knowledge_upload_body_limit
    from callable_agents.dashboard.routes import dashboard_routes

    mounted, public = channel_routes(plugins)
    # /channels/... first: it takes the traffic (webhooks, widget calls) and nothing else
    # lives under it. A plugin's root-level routes come after the server's own.
    routes: list[BaseRoute] = [
        *mounted,
        Route("/", home),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_route, methods=["GET"]),
        Mount("/api/v1", routes=admin_routes()),
        *dashboard_routes(),
        *public,
        *extra_routes,
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(ChannelRequests),
            Middleware(
                BodySizeLimit,
                max_bytes=settings.max_request_bytes,
                # The file uploads of the admin API and of the dashboard's Knowledge Base page.
                upload_bytes=max(api_upload_body_limit(settings), knowledge_upload_body_limit(settings)),
                upload_paths=(*API_UPLOAD_PATHS, *KNOWLEDGE_UPLOAD_PATHS),
            ),
        ],
        exception_handlers={
            CallableError: callable_error_handler,
            HTTPException: http_error_handler,
            # Database errors by their class too: the handler for Exception answers and then
            # re-raises, so during a database outage every webhook would log a traceback and
            # lose its connection. Registered here, they get their 503 (Twilio retries) and no more.
            DBAPIError: server_error_handler,
            Exception: server_error_handler,
        },
        lifespan=lifespan,
    )
    app.state.home_links = list(home_links)
    return app

