"""The web chat API, shared by the website widget and the public chat page.

Mounted per channel kind at ``/channels/{kind}/{channel_id}/...``:

* ``POST sessions`` — start (or, with ``{"token"}``, resume) a visitor session; returns a
  signed visitor token and what the chat looks like (title, greeting, appearance).
* ``POST messages`` — ``Authorization: Bearer <token>``, ``{"text", "client_message_id"?}``
  → 202 ``{"message_id"}``; the agent answers through the pipeline's worker.
* ``GET messages`` — this visitor's history (``?after=<id>``, ``?limit=``).
* ``GET events`` — server-sent events: ``token`` (a streamed piece of the reply),
  ``message`` (a stored message: the final reply, a person's reply, the visitor's own from
  another tab), ``status`` (``bot`` / ``human``: handed off and back), ``typing``, ``ping``.

A visitor token reads and writes only its own conversation on its own channel. Origins are
checked on every call (CORS for browsers, and an ``Origin`` check so a page elsewhere gets
no session): the widget allows its configured origins, the page only the server's own.

Live events come from the process's :class:`StreamHub`, which on PostgreSQL also carries
the events of every other process (the worker's tokens included); the stream also reads
stored messages after the last one it sent every second, so a reply whose live event was
lost still arrives, whole. A ``message`` event's SSE id is the message's id: a reconnecting
stream sends it back (``Last-Event-ID``, or ``?after=``) and gets every later message once.
Rate limits (per visitor, per IP) hold across processes (:func:`rate_limits`) and answer
429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from callable_agents.plugin import (
    BIGINT_MAX,
    AgentRecord,
    ChannelCapabilities,
    ChannelRecord,
    ConversationRecord,
    InboundMessage,
    InvalidInput,
    MessageRecord,
    Runtime,
    StreamHub,
    TurnStarted,
    accept_inbound,
    find_conversation,
    find_conversation_id,
    parse_int,
    parse_json,
    read_conversation_updates,
    read_messages,
    read_public_channel,
    read_session_start,
    runtime_of,
)
from callable_agents.plugins.webchat.config import OriginRule, WebChatLimits, parse_origin
from callable_agents.plugins.webchat.limits import acquire, limit_key
from callable_agents.plugins.webchat.tokens import InvalidVisitorToken, Visitor, VisitorTokens

log = logging.getLogger(__name__)

WEB_CAPABILITIES = ChannelCapabilities(
    formatting="markdown", citations=True, streaming=True, media=True, max_message_length=None
)

POLL_SECONDS = 1.0  # how often a stream reads stored messages (replies from other processes)
PING_SECONDS = 15.0  # keeps proxies from closing an idle stream
MAX_STREAM_SECONDS = 300.0  # then the client reconnects with ?after=; proxies dislike endless responses
REORDER_SECONDS = 5.0  # re-read this far back: ids are assigned before commit, so commits can land out of order
HISTORY_LIMIT = 100
MAX_HISTORY_LIMIT = 200
_CHANNEL_ID = re.compile(r"^[0-9a-f]{32}$")
_CLIENT_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SAFE_URL = re.compile(r"^(?:https?://|mailto:)[^\s<>\"']+$", re.IGNORECASE)
_MAX_URL_LENGTH = 2048
_MAX_TITLE_LENGTH = 200
_WAITERS = "webchat_conversation_waiters"


# --------------------------------------------------------------------------- delivery
# Web channels deliver by storing (``send=None``): the browser reads stored messages and
# live events, so there is nothing to push.


async def on_turn_started(runtime: Runtime, turn: TurnStarted) -> None:
    """Tell open streams the agent is writing (shows a typing indicator)."""
    StreamHub.of(runtime).publish(turn.conversation_id, {"type": "typing"})


# --------------------------------------------------------------------------- what visitors see


def _safe_url(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    url = value.strip()
    return url if len(url) <= _MAX_URL_LENGTH and _SAFE_URL.match(url) else None


CITED_OUTCOMES = (None, "answered", "offline")  # a fallback or "I don't know" cites nothing


def public_choices(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Choices the agent offered with the message (``meta["choices"]``), for the browser to
    show as buttons: the question and each choice's id and title, as text."""
    choices = (meta or {}).get("choices")
    if not isinstance(choices, Mapping):
        return None
    options = [
        {"id": str(option.get("id") or "")[:200], "title": str(option.get("title") or "")[:200]}
        for option in choices.get("options") or [] if isinstance(option, Mapping) and option.get("title")
    ][:20]
    if not options:
        return None
    return {"text": str(choices.get("text") or "")[:2000], "options": options}


def public_citations(meta: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The message's citations a browser may show: http(s)/mailto links only, deduplicated,
    and only on replies that answered from them."""
    meta = meta or {}
    if meta.get("outcome") not in CITED_OUTCOMES:
        return []
    seen: set[str] = set()
    shown: list[dict[str, Any]] = []
    for citation in meta.get("citations") or []:
        if not isinstance(citation, dict):
            continue
        url = _safe_url(citation.get("url"))
        if url is None or url in seen:
            continue
        seen.add(url)
        title = citation.get("title")
        page = citation.get("page")
        shown.append(
            {
                "url": url,
                "title": " ".join(str(title).split())[:_MAX_TITLE_LENGTH] if title else "",
                "page": page if isinstance(page, int) and not isinstance(page, bool) else None,
            }
        )
    return shown


def public_media(media: Sequence[Any] | None) -> list[dict[str, str]]:
    shown = []
    for item in media or []:
        if isinstance(item, dict) and (url := _safe_url(item.get("url"))) and not url.lower().startswith("mailto:"):
            shown.append({"url": url, "content_type": str(item.get("content_type") or "")[:100]})
    return shown


def public_message(
    *,
    message_id: int,
    author: str,
    text: str,
    media: Sequence[Any] | None,
    meta: Mapping[str, Any] | None,
    status: str,
    created_at: str | None,
) -> dict[str, Any]:
    """One message as the visitor's browser gets it (history and live events alike)."""
    by = (meta or {}).get("by") if author == "human" else None
    return {
        "id": message_id,
        "author": author,
        "author_name": str(by)[:100] if by else None,
        "text": text or "",
        "media": public_media(media),
        "citations": public_citations(meta),
        "choices": public_choices(meta),
        "status": status,
        "created_at": created_at,
    }


def _from_row(message: MessageRecord) -> dict[str, Any]:
    return public_message(
        message_id=message.id,
        author=message.author,
        text=message.text,
        media=message.media,
        meta=message.meta,
        status=message.status,
        created_at=message.created_at.isoformat() if message.created_at else None,
    )


# --------------------------------------------------------------------------- errors and CORS


class ApiError(Exception):
    """An answer other than success: status, a message naming what was wrong, headers."""

    def __init__(self, status: int, message: str, *, field: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}

    def response(self, cors: dict[str, str]) -> Response:
        body: dict[str, Any] = {"message": self.message}
        if self.field:
            body["field"] = self.field
        return JSONResponse({"error": body}, self.status, headers={**cors, **self.headers, "Vary": "Origin"})


def _cors_headers(origin: str | None) -> dict[str, str]:
    if origin is None:
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": "Retry-After", "Vary": "Origin"}


def own_origins(request: Request, runtime: Runtime) -> list[OriginRule]:
    """The origins this server is reached at: the request's own and ``public_base_url``."""
    rules = []
    for candidate in (f"{request.url.scheme}://{request.url.netloc}", runtime.settings.public_base_url or ""):
        parsed = parse_origin(candidate) if candidate else None
        if parsed is not None:
            rules.append(OriginRule(*parsed))
    return rules


# --------------------------------------------------------------------------- the API


@dataclass(frozen=True)
class WebChatSurface:
    """What differs between the widget and the page: kind, config, origins, look."""

    kind: str
    config_schema: type[WebChatLimits]
    # The origins allowed to call this channel's API.
    allowed_origins: Callable[[Request, Runtime, Any], list[OriginRule]]
    # {"title", "greeting", "appearance"} for the session answer.
    presentation: Callable[[ChannelRecord, AgentRecord, Any], dict[str, Any]]
    # What a refused origin is told to do about it.
    origin_hint: str = "add it to the channel's allowed_origins"


@dataclass
class ChatContext:
    runtime: Runtime
    channel: ChannelRecord
    config: Any  # the surface's config model
    cors: dict[str, str]
    origin: str | None


@dataclass
class _Waiters:
    """Streams waiting for a visitor's first message, which creates the conversation.

    The message's handler hands them the conversation id directly, so they subscribe to its
    live events before the worker (woken by the same message) can stream the first reply.
    """

    futures: dict[tuple[str, str], set[asyncio.Future[str]]] = field(default_factory=dict)

    def notify(self, channel_id: str, external_user_id: str, conversation_id: str) -> None:
        for future in self.futures.get((channel_id, external_user_id), ()):
            if not future.done():
                future.set_result(conversation_id)


def _waiters(runtime: Runtime) -> _Waiters:
    return runtime.services.shared(_Waiters, _Waiters)


Handler = Callable[[Request], Awaitable[Response]]


class WebChatAPI:
    """The chat endpoints for one channel kind."""

    def __init__(self, surface: WebChatSurface) -> None:
        self.surface = surface

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{channel_id}/sessions", self._endpoint(self.sessions), methods=["POST", "OPTIONS"]),
            Route("/{channel_id}/messages", self._endpoint(self.messages), methods=["GET", "POST", "OPTIONS"]),
            Route("/{channel_id}/events", self._endpoint(self.events), methods=["GET", "OPTIONS"]),
        ]

    def _endpoint(self, handler: Callable[[Request, ChatContext], Awaitable[Response]]) -> Handler:
        """The handler behind the channel lookup, the origin check, CORS and JSON errors."""

        async def endpoint(request: Request) -> Response:
            cors: dict[str, str] = {}
            try:
                context = await self._context(request)
                cors = context.cors
                if request.method == "OPTIONS":
                    return Response(
                        status_code=204,
                        headers={
                            **cors,
                            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                            "Access-Control-Allow-Headers": "Authorization, Content-Type",
                            "Access-Control-Max-Age": "600",
                        },
                    )
                return await handler(request, context)
            except ApiError as error:
                return error.response(cors)

        endpoint.__name__ = handler.__name__
        return endpoint

    # -- request context ------------------------------------------------------------------

    async def _context(self, request: Request) -> ChatContext:
        runtime = runtime_of(request)
        channel_id = request.path_params["channel_id"]
        channel = await read_public_channel(runtime, channel_id) if _CHANNEL_ID.match(channel_id) else None
        if channel is None or channel.kind != self.surface.kind or not channel.enabled:
            raise ApiError(404, f"no {self.surface.kind} channel {channel_id[:40]!r} here (unknown or disabled)")
        try:
            config = self.surface.config_schema.model_validate(channel.config or {})
        except ValidationError:
            log.warning("%s channel %s has a config its schema refuses; not serving it", channel.kind, channel.id)
            raise ApiError(503, "this chat is not available right now (its configuration is invalid)") from None
        sent_origin = request.headers.get("origin")
        # A request without Origin is same-origin or not from a browser: judge it as the server's own.
        effective = sent_origin or f"{request.url.scheme}://{request.url.netloc}"
        rules = self.surface.allowed_origins(request, runtime, config)
        if not any(rule.matches(effective) for rule in rules):
            raise ApiError(
                403,
                f"origin {effective[:100]!r} is not allowed to use this {self.surface.kind}; {self.surface.origin_hint}",
                field="Origin",
            )
        return ChatContext(runtime, channel, config, _cors_headers(sent_origin), sent_origin)

    def _visitor(self, request: Request, context: ChatContext) -> Visitor:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(
                401,
                "Authorization: expected 'Bearer <visitor token>' (POST sessions gives one)",
                field="Authorization",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            visitor = VisitorTokens.of(context.runtime).verify(value.strip())
        except InvalidVisitorToken as exc:
            raise ApiError(401, f"{exc}; start a new session", field="Authorization", headers={"WWW-Authenticate": "Bearer"}) from None
        if visitor.channel_id != context.channel.id:
            raise ApiError(403, "the visitor token belongs to another channel; start a session on this one", field="Authorization")
        return visitor

    async def _limit(self, context: ChatContext, name: str, checks: Sequence[tuple[str, int]]) -> None:
        retry_after = await acquire(context.runtime, name, checks)
        if retry_after is not None:
            raise ApiError(
                429,
                f"too many requests; try again in {retry_after} seconds",
                headers={"Retry-After": str(retry_after)},
            )

    @staticmethod
    def _client_ip(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    @staticmethod
    async def _json_object(request: Request, *, required: bool, max_bytes: int) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise ApiError(413, f"request body too large: at most {max_bytes} bytes here", field="body")
        raw = await request.body()
        if len(raw) > max_bytes:
            raise ApiError(413, f"request body too large: at most {max_bytes} bytes here", field="body")
        if not raw.strip():
            if required:
                raise ApiError(422, "body: expected a JSON object", field="body")
            return {}
        try:
            body = parse_json(raw)
        except InvalidInput as exc:
            raise ApiError(422, str(exc), field=exc.field or "body") from None
        if not isinstance(body, dict):
            raise ApiError(422, f"body: expected a JSON object, got {type(body).__name__}", field="body")
        return body

    async def _conversation(self, runtime: Runtime, channel: ChannelRecord, visitor: Visitor) -> ConversationRecord | None:
        return await find_conversation(runtime, channel.workspace_id, channel.id, visitor.external_user_id)

    # -- endpoints ------------------------------------------------------------------------

    async def sessions(self, request: Request, context: ChatContext) -> Response:
        config = context.config
        await self._limit(context, "webchat_sessions", [(limit_key("sessions-ip", context.channel.id, self._client_ip(request)), config.sessions_per_minute_per_ip)])
        body = await self._json_object(request, required=False, max_bytes=4096)
        given = body.get("token")
        if given is not None and not isinstance(given, str):
            raise ApiError(422, f"token: expected a string or nothing, got {type(given).__name__}", field="token")
        tokens = VisitorTokens.of(context.runtime)
        visitor: Visitor | None = None
        if given:
            try:
                visitor = tokens.verify(given)
            except InvalidVisitorToken:
                visitor = None  # a stale or foreign token: start afresh rather than fail the page
            if visitor is not None and visitor.channel_id != context.channel.id:
                visitor = None
        resumed = visitor is not None
        if visitor is None:
            token, visitor = tokens.issue(context.channel.id)
        else:
            token = given  # type: ignore[assignment]
        agent, status = await read_session_start(
            context.runtime, context.channel.agent_id, context.channel.id, visitor.external_user_id
        )
        assert agent is not None  # a foreign key with ON DELETE RESTRICT
        return JSONResponse(
            {
                "token": token,
                "visitor_id": visitor.visitor_id,
                "resumed": resumed,
                "status": status or "bot",
                "max_message_chars": config.max_message_chars,
                **self.surface.presentation(context.channel, agent, config),
            },
            headers=context.cors,
        )

    async def messages(self, request: Request, context: ChatContext) -> Response:
        visitor = self._visitor(request, context)
        if request.method == "POST":
            return await self._post_message(request, context, visitor)
        return await self._history(request, context, visitor)

    async def _post_message(self, request: Request, context: ChatContext, visitor: Visitor) -> Response:
        config = context.config
        channel = context.channel
        await self._limit(
            context,
            "webchat_messages",
            [
                (limit_key("messages-visitor", channel.id, visitor.visitor_id), config.messages_per_minute_per_visitor),
                (limit_key("messages-ip", channel.id, self._client_ip(request)), config.messages_per_minute_per_ip),
            ],
        )
        # Room for the longest message with every character JSON-escaped, plus the envelope.
        body = await self._json_object(request, required=True, max_bytes=config.max_message_chars * 12 + 2048)
        text = body.get("text")
        if not isinstance(text, str):
            raise ApiError(422, f"text: expected a string, got {type(text).__name__ if text is not None else 'nothing'}", field="text")
        text = text.strip()
        if not text:
            raise ApiError(422, "text: expected a non-empty message", field="text")
        if len(text) > config.max_message_chars:
            raise ApiError(
                413,
                f"text: a message may be at most {config.max_message_chars} characters; this one has {len(text)}",
                field="text",
            )
        client_message_id = body.get("client_message_id")
        provider_message_id = None
        if client_message_id is not None:
            if not isinstance(client_message_id, str) or not _CLIENT_MESSAGE_ID.match(client_message_id):
                raise ApiError(422, "client_message_id: expected 1-64 letters, digits, '-' or '_'", field="client_message_id")
            # A retried POST carries the same id: the pipeline's dedupe key makes it one message.
            digest = hashlib.sha256(f"{visitor.visitor_id}:{client_message_id}".encode()).hexdigest()[:48]
            provider_message_id = f"web-{digest}"
        accepted = await accept_inbound(
            context.runtime,
            channel,
            InboundMessage(
                external_user_id=visitor.external_user_id,
                text=text,
                provider_message_id=provider_message_id,
                profile={"name": visitor.display_name},
                meta={"origin": context.origin or "", "surface": self.surface.kind},
            ),
        )
        if not accepted.duplicate:
            # Other tabs of the same visitor see it at once; the sender already shows it.
            StreamHub.of(context.runtime).publish(
                accepted.conversation_id,
                {"type": "message", "id": accepted.message_id, "author": "customer", "text": text, "media": [], "meta": {}, "status": "received"},
            )
            _waiters(context.runtime).notify(channel.id, visitor.external_user_id, accepted.conversation_id)
        return JSONResponse(
            {"message_id": accepted.message_id, "duplicate": accepted.duplicate}, status_code=202, headers=context.cors
        )

    async def _history(self, request: Request, context: ChatContext, visitor: Visitor) -> Response:
        after = _int_param(request, "after", default=0, minimum=0)
        limit = _int_param(request, "limit", default=HISTORY_LIMIT, minimum=1, maximum=MAX_HISTORY_LIMIT)
        conversation = await self._conversation(context.runtime, context.channel, visitor)
        if conversation is None:
            return JSONResponse({"messages": [], "status": "bot"}, headers=context.cors)
        rows = await read_messages(context.runtime, conversation.workspace_id, conversation.id, after=after, limit=limit)
        return JSONResponse(
            {"messages": [_from_row(row) for row in rows], "status": conversation.status}, headers=context.cors
        )

    async def events(self, request: Request, context: ChatContext) -> Response:
        visitor = self._visitor(request, context)
        after = _int_param(request, "after", default=0, minimum=0)
        last_event_id = request.headers.get("last-event-id", "").strip()
        if last_event_id.isdigit() and len(last_event_id) <= 19:
            after = max(after, int(last_event_id))  # an EventSource reconnecting
        return StreamingResponse(
            EventStream(context.runtime, context.channel, visitor, after).run(),
            media_type="text/event-stream; charset=utf-8",
            headers={**context.cors, "Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
        )


def _int_param(request: Request, name: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
    try:
        return parse_int(request.query_params.get(name), name, default=default, minimum=minimum, maximum=maximum or BIGINT_MAX)
    except InvalidInput as exc:
        raise ApiError(422, str(exc), field=name) from None


def _sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


class EventStream:
    """One visitor's server-sent events: live hub events plus a poll of stored messages.

    Polls read messages above a *floor*: the client's ``after`` or, later, the newest id a
    poll saw :data:`REORDER_SECONDS` ago. Ids are assigned before commit, so on PostgreSQL
    a message can become visible after a higher id; re-reading that short stretch (and
    skipping ids already sent) delivers it anyway, once.
    """

    def __init__(self, runtime: Runtime, channel: ChannelRecord, visitor: Visitor, after: int) -> None:
        self.runtime = runtime
        self.channel = channel
        self.visitor = visitor
        self.after = after
        self.conversation_id: str | None = None
        self.status: str | None = None
        self.delivered: set[int] = set()  # ids sent by this stream, above the floor
        self._seen: deque[tuple[float, int]] = deque()  # (when, highest id a poll read)

    async def run(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAX_STREAM_SECONDS
        yield ": stream open\n\n"
        async for ping in self._wait_for_conversation(deadline):
            yield ping
        if self.conversation_id is None:
            return  # the deadline passed first: the client reconnects
        async with StreamHub.of(self.runtime).subscribe(self.conversation_id) as queue:
            for chunk in await self._poll():  # after subscribing, so nothing falls in between
                yield chunk
            next_poll = loop.time() + POLL_SECONDS
            next_ping = loop.time() + PING_SECONDS
            while loop.time() < deadline:
                event = None
                try:  # asyncio.timeout: Python 3.11's wait_for can drop the stream's cancellation
                    async with asyncio.timeout(max(0.0, next_poll - loop.time())):
                        event = await queue.get()
                except TimeoutError:
                    pass
                live = self._live(event) if event is not None else None
                if live:
                    yield live
                elif event is not None and event.get("type") == "stored":
                    next_poll = loop.time()  # another process stored a message too large to relay: read it now
                if loop.time() >= next_poll:
                    for chunk in await self._poll():
                        yield chunk
                    next_poll = loop.time() + POLL_SECONDS
                if loop.time() >= next_ping:
                    yield _sse("ping", {})
                    next_ping = loop.time() + PING_SECONDS

    async def _wait_for_conversation(self, deadline: float) -> AsyncIterator[str]:
        """Until the visitor's first message creates the conversation, wait (pinging)."""
        loop = asyncio.get_running_loop()
        key = (self.channel.id, self.visitor.external_user_id)
        waiters = _waiters(self.runtime)
        created: asyncio.Future[str] = loop.create_future()
        waiters.futures.setdefault(key, set()).add(created)
        try:
            next_ping = loop.time() + PING_SECONDS
            while loop.time() < deadline:
                self.conversation_id = await self._find_conversation()
                if self.conversation_id is not None:
                    return
                try:  # a message posted to this process says at once; others are found by polling
                    async with asyncio.timeout(POLL_SECONDS):
                        self.conversation_id = await asyncio.shield(created)
                    return
                except TimeoutError:
                    pass
                if loop.time() >= next_ping:
                    yield _sse("ping", {})
                    next_ping = loop.time() + PING_SECONDS
        finally:
            waiting = waiters.futures.get(key)
            if waiting is not None:
                waiting.discard(created)
                if not waiting:
                    del waiters.futures[key]
            created.cancel()

    async def _find_conversation(self) -> str | None:
        return await find_conversation_id(
            self.runtime, self.channel.workspace_id, self.channel.id, self.visitor.external_user_id
        )

    def _floor(self) -> int:
        now = asyncio.get_running_loop().time()
        floor = self.after
        for at, highest in self._seen:
            if at <= now - REORDER_SECONDS:
                floor = max(floor, highest)
        return floor

    def _message(self, message: dict[str, Any]) -> str | None:
        if message["id"] in self.delivered or message["id"] <= self._floor():
            return None
        self.delivered.add(message["id"])
        return _sse("message", message, message["id"])

    def _status(self, status: str) -> str | None:
        if status == self.status or status not in ("bot", "human", "closed"):
            return None
        self.status = status
        return _sse("status", {"status": status})

    def _live(self, event: dict[str, Any]) -> str | None:
        kind = event.get("type")
        if kind == "token":
            return _sse("token", {"text": str(event.get("text") or "")})
        if kind == "typing":
            return _sse("typing", {})
        if kind == "status":
            return self._status(str(event.get("status")))
        if kind == "failed" and isinstance(event.get("id"), int):
            return _sse("failed", {"id": event["id"]})
        if kind == "message" and isinstance(event.get("id"), int) and not isinstance(event.get("id"), bool):
            return self._message(
                public_message(
                    message_id=event["id"],
                    author=str(event.get("author") or "agent"),
                    text=str(event.get("text") or ""),
                    media=event.get("media"),
                    meta=event.get("meta"),
                    status=str(event.get("status") or "pending"),
                    created_at=None,
                )
            )
        return None

    async def _poll(self) -> list[str]:
        """Stored messages not sent yet (from any process), and the conversation's status."""
        floor = self._floor()
        highest = max(floor, self._seen[-1][1] if self._seen else 0)
        assert self.conversation_id is not None  # run() polls once the conversation exists
        updates = await read_conversation_updates(
            self.runtime, self.channel.workspace_id, self.conversation_id,
            floor=floor, highest=highest, limit=MAX_HISTORY_LIMIT,
        )
        status, late, new = updates.status, updates.late, updates.new
        chunks = [chunk for chunk in [self._status(status)] if chunk] if status is not None else []
        chunks += [chunk for row in [*late, *new] if (chunk := self._message(_from_row(row)))]
        now = asyncio.get_running_loop().time()
        self._seen.append((now, new[-1].id if new else highest))
        while len(self._seen) > 1 and self._seen[1][0] <= now - REORDER_SECONDS:
            self._seen.popleft()  # the newest snapshot old enough stays: it is the floor
        floor = self._floor()
        self.delivered = {message_id for message_id in self.delivered if message_id > floor}
        return chunks
