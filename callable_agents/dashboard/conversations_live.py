"""``/dashboard/conversations/events``: the inbox's server-sent events.

One stream per open page: the list (with its filters) or one conversation (``open``). Each
wake-up of the process's :class:`~callable_agents.core.conversation.streams.StreamHub` (a
message stored, a status or delivery change, the worker filing customer messages), or a
poll every second for writes it didn't see, reads what changed in the viewer's workspace
from the database (:func:`~callable_agents.core.conversation.inbox.read_changes`) and sends
each changed list row or message as server-rendered HTML that replaces its element by id.

Each event's id is the moment of the latest change read; a reconnecting browser sends it
back (``Last-Event-ID``, or ``since`` in the URL) and the stream reads again from a little
before it, so a write committed late is not lost; a row or message sent again replaces
itself, so nothing shows twice. Streamed tokens of the open conversation go through as
they come (no id: they are not stored).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from callable_agents.core.conversation import inbox
from callable_agents.core.conversation.people import mark_read
from callable_agents.core.conversation.reads import read_conversation
from callable_agents.core.conversation.streams import StreamHub
from callable_agents.core.errors import NotFound
from callable_agents.core.models import Channel, Conversation
from callable_agents.core.runtime import Runtime, runtime_of
from callable_agents.core.store.users import SignedIn
from callable_agents.dashboard.conversation_views import AUTHOR_LABELS, DELIVERY_LABELS, STATUS_LABELS, delivery_error_text, filters_of
from callable_agents.dashboard.guard import page
from callable_agents.dashboard.rendering import environment

# Read again from this long before the last event: a transaction that took its timestamp
# earlier but committed later is still seen.
SLACK = timedelta(seconds=2)
POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
MAX_REMEMBERED = 5000


def sse(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def render_fragment(template: str, context: dict[str, Any]) -> str:
    return environment().get_template(template).render(context)


class InboxStream:
    """One viewer's stream: what they have been sent, and how to render what changed."""

    def __init__(self, runtime: Runtime, viewer: SignedIn, filters: inbox.InboxFilters, open_id: str | None, since: datetime) -> None:
        self.runtime = runtime
        self.viewer = viewer
        self.filters = filters
        self.open_id = open_id
        self.since = since
        self.sent: dict[str, Any] = {}

    async def changes(self) -> list[str]:
        found = await inbox.read_changes(self.runtime, self.viewer.workspace_id, self.since - SLACK, conversation_id=self.open_id)
        out: list[tuple[str, dict[str, Any]]] = []
        now = datetime.now(timezone.utc)
        rows: list[inbox.InboxRow] = []
        if found.conversation_ids:
            listed = await inbox.list_conversations(
                self.runtime,
                self.viewer.workspace_id,
                self.viewer.user_id,
                inbox.InboxFilters() if self.open_id else self.filters,
                only_ids=found.conversation_ids,
                limit=inbox.MAX_PAGE_SIZE,
            )
            rows = listed.rows
        shown = {row.id for row in rows}
        kind = ""
        for row in rows:
            if self.open_id and row.id != self.open_id:
                continue
            kind = row.channel_kind
            version = (row.updated_at, row.status, row.assignee_id, row.last_message_id, row.unread, row.handoff_reason)
            if self.sent.get(f"c:{row.id}") == version:
                continue
            self.sent[f"c:{row.id}"] = version
            context = {
                "row": row, "status_labels": STATUS_LABELS, "author_labels": AUTHOR_LABELS, "now": now,
                "viewer": self.viewer, "csrf_token": self.viewer.csrf_token,
            }
            if self.open_id:
                out.append(("header", {"id": row.id, "html": render_fragment("conversations/_header.html", context), "status": row.status}))
            else:
                out.append(("row", {"id": row.id, "html": render_fragment("conversations/_row.html", context), "sort": row.updated_at.timestamp()}))
        if not self.open_id:
            for conversation_id in found.conversation_ids:
                if conversation_id not in shown and self.sent.pop(f"c:{conversation_id}", None) is not None:
                    out.append(("remove", {"id": conversation_id}))
        newest = 0
        for message in found.messages:
            sent_as = (message.updated_at, message.status)
            if self.sent.get(f"m:{message.id}") == sent_as:
                continue
            self.sent[f"m:{message.id}"] = sent_as
            newest = max(newest, message.id)
            if not kind:
                kind = await self._kind()
            context = {
                "message": message,
                "delivery_labels": DELIVERY_LABELS,
                "error_text": lambda m, kind=kind: delivery_error_text(self.runtime, kind, m.error_code, m.error_message),
                "conversation_id": self.open_id,
            }
            out.append(("message", {"id": message.id, "html": render_fragment("conversations/_message.html", context)}))
        if newest and self.open_id:
            await mark_read(self.runtime, self.viewer.workspace_id, self.open_id, self.viewer.user_id, newest)
        if found.high_water is not None and found.high_water > self.since:
            self.since = found.high_water
        if len(self.sent) > MAX_REMEMBERED:
            self.sent.clear()  # sending a few again only replaces them in the page
        event_id = inbox.feed_stamp(self.since)
        return [sse(name, data, event_id) for name, data in out]

    async def _kind(self) -> str:
        async with self.runtime.db.sessions() as session:
            kind = await session.scalar(select(Channel.kind).join(Conversation, Conversation.channel_id == Channel.id).where(Conversation.id == self.open_id))
        return kind or ""


async def _wait(wake: asyncio.Event, tokens: asyncio.Queue[dict[str, Any]] | None, timeout: float) -> list[dict[str, Any]]:
    """Until something changes (or ``timeout``): the open conversation's live tokens meanwhile."""
    waiters: list[asyncio.Task[Any]] = [asyncio.ensure_future(wake.wait())]
    if tokens is not None:
        waiters.append(asyncio.ensure_future(tokens.get()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    got: list[dict[str, Any]] = []
    if tokens is not None:
        if waiters[1].done() and not waiters[1].cancelled():
            got.append(waiters[1].result())
        while not tokens.empty():
            got.append(tokens.get_nowait())
    return got


@page
async def events(request: Request, viewer: SignedIn) -> Response:
    runtime = runtime_of(request)
    filters = filters_of(request, viewer)
    open_id = request.query_params.get("open") or None
    if open_id is not None and await read_conversation(runtime, viewer.workspace_id, open_id) is None:
        raise NotFound(f"conversation {open_id!r} not found")
    last = request.headers.get("last-event-id") or request.query_params.get("since")
    since = inbox.feed_moment(last) if last else datetime.now(timezone.utc)
    stream = InboxStream(runtime, viewer, filters, open_id, since)

    async def body() -> AsyncIterator[str]:
        hub = StreamHub.of(runtime)
        async with AsyncExitStack() as stack:
            wake = await stack.enter_async_context(hub.watch())
            tokens = await stack.enter_async_context(hub.subscribe(open_id)) if open_id else None
            yield "retry: 1000\n\n"
            quiet = 0.0
            while True:
                wake.clear()
                sent = await stream.changes()
                for chunk in sent:
                    yield chunk
                quiet = 0.0 if sent else quiet + POLL_SECONDS
                if quiet >= HEARTBEAT_SECONDS:
                    quiet = 0.0
                    yield ": ping\n\n"
                for event in await _wait(wake, tokens, POLL_SECONDS):
                    if event.get("type") == "token":
                        yield sse("token", {"text": str(event.get("text", ""))})
                    elif event.get("type") == "typing":
                        yield sse("typing", {})

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


def stamp(moment: datetime) -> str:
    return inbox.feed_stamp(moment)

