"""Serving ``/metrics``: on a port of its own, or on the server's behind a bearer token.

Never public by default: without ``CALLABLE_METRICS_PORT`` and ``CALLABLE_METRICS_TOKEN`` the
server's ``/metrics`` answers 404 and no other port is opened.

* ``CALLABLE_METRICS_PORT``: every ``callable serve`` and ``callable worker`` process listens
  there (on ``CALLABLE_METRICS_HOST``, 127.0.0.1 unless set) and answers ``GET /metrics``; a
  port kept off the public network (the TLS proxy does not forward it). With
  ``PROMETHEUS_MULTIPROC_DIR`` the processes of a host share the port (``SO_REUSEPORT``) and
  any of them reports them all; without it each process needs a port of its own.
* ``CALLABLE_METRICS_TOKEN``: the server's own ``/metrics`` answers a request carrying
  ``Authorization: Bearer <token>`` (and so does the metrics port, when both are set).

The backlog gauges (inbound queue, jobs) are read from the database at each scrape; a
database out of reach leaves them out and the counters are still served.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from datetime import datetime, timezone

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from callable_agents.core.errors import ConfigError
from callable_agents.core.models import Job, QueuedInbound
from callable_agents.core.observability.metrics import (
    CONTENT_TYPE,
    Backlog,
    backlog_from_rows,
    multiprocess_dir,
    render_metrics,
)
from callable_agents.core.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)

BACKLOG_TIMEOUT_SECONDS = 3.0
MAX_REQUEST_HEAD_BYTES = 8192
BACKLOG_JOB_STATES = ("pending", "running", "failed")


def _read_backlog(session: Session) -> Backlog:
    queued = QueuedInbound.__table__.c
    inbound = session.execute(
        select(
            func.count(queued.id) - func.count(queued.error),
            func.min(case((queued.error.is_(None), queued.received_at))),
            func.count(queued.error),
        )
    ).one()
    jobs = Job.__table__.c
    since = case((jobs.status == "pending", jobs.run_after), else_=jobs.updated_at)
    rows = session.execute(
        select(jobs.kind, jobs.status, func.count(), func.min(since))
        .where(jobs.status.in_(BACKLOG_JOB_STATES))
        .group_by(jobs.kind, jobs.status)
    ).all()
    now = datetime.now(timezone.utc)
    return backlog_from_rows(
        now, (int(inbound[0] or 0), inbound[1], int(inbound[2] or 0)), [(r[0], r[1], int(r[2]), r[3]) for r in rows]
    )


async def read_backlog(runtime: Runtime) -> Backlog | None:
    """The inbound queue and job backlog, or None when the database does not answer in time."""
    try:
        return await asyncio.wait_for(runtime.db.run(_read_backlog, write=False), BACKLOG_TIMEOUT_SECONDS)
    except Exception as exc:  # the counters are worth serving without the backlog
        log.warning("metrics: the backlog could not be read (%s)", type(exc).__name__)
        return None


async def exposition(runtime: Runtime) -> bytes:
    return render_metrics(await read_backlog(runtime))


def _token_matches(runtime: Runtime, authorization: str | None) -> bool:
    token = runtime.settings.metrics_token
    if token is None:
        return True
    expected = f"Bearer {token.get_secret_value()}".encode()
    return authorization is not None and hmac.compare_digest(authorization.encode(), expected)


async def metrics_route(request: Request) -> Response:
    """The server's ``/metrics``: 404 unless ``CALLABLE_METRICS_TOKEN`` is set, 401 without it."""
    runtime = runtime_of(request)
    if runtime.settings.metrics_token is None:
        return PlainTextResponse("Not Found", 404)
    if not _token_matches(runtime, request.headers.get("authorization")):
        return PlainTextResponse(
            "metrics: expected the header Authorization: Bearer <CALLABLE_METRICS_TOKEN>",
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Response(await exposition(runtime), media_type=CONTENT_TYPE)


async def start_metrics_server(runtime: Runtime) -> asyncio.Server | None:
    """Listen on ``CALLABLE_METRICS_PORT`` if set (close the server at shutdown); else None."""
    port = runtime.settings.metrics_port
    if port is None:
        return None

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            status, body, content_type = await _respond(runtime, head[:MAX_REQUEST_HEAD_BYTES])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            status, body, content_type = "400 Bad Request", b"bad request\n", "text/plain"
        try:
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    # With a multi-process directory every process on the host reports all of them, so they
    # share the port (the kernel spreads connections over them); without one, each process
    # needs a port of its own, and a taken port stops start-up saying so.
    shared = multiprocess_dir() is not None
    try:
        server = await asyncio.start_server(
            answer, runtime.settings.metrics_host, port, limit=MAX_REQUEST_HEAD_BYTES, reuse_port=shared
        )
    except OSError as exc:
        raise ConfigError(
            f"CALLABLE_METRICS_PORT: cannot listen on {runtime.settings.metrics_host}:{port} ({exc.strerror}); "
            + ("" if shared else "several processes on one host share it only with PROMETHEUS_MULTIPROC_DIR set, "
               "else give each process a port of its own")
        ) from None
    log.info("metrics on http://%s:%d/metrics", runtime.settings.metrics_host, port)
    return server


async def _respond(runtime: Runtime, head: bytes) -> tuple[str, bytes, str]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[0] not in ("GET", "HEAD"):
        return "405 Method Not Allowed", b"expected GET /metrics\n", "text/plain"
    if parts[1].split("?", 1)[0] != "/metrics":
        return "404 Not Found", b"not found: metrics are at /metrics\n", "text/plain"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if not _token_matches(runtime, headers.get("authorization")):
        return "401 Unauthorized", b"expected the header Authorization: Bearer <CALLABLE_METRICS_TOKEN>\n", "text/plain"
    body = await exposition(runtime)
    return "200 OK", b"" if parts[0] == "HEAD" else body, CONTENT_TYPE
