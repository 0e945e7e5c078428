"""``/dashboard/conversations``: the inbox. Every channel's conversations, live, and a person's part in them.

The list (:func:`index`) and one conversation (:func:`view`) are server-rendered pages;
:mod:`.conversations_live` streams their changes (server-sent events). A person takes
over, replies (taking over first when the agent has it), gives it back, closes, assigns
and writes internal notes with plain forms that post and redirect, through the service
layer the admin API uses (:mod:`callable_agents.core.conversation.people`,
:mod:`callable_agents.core.conversation.inbox`). Everything is scoped by the viewer's
workspace: another workspace's conversation is not found.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.core.contracts.channels import ChannelMediaError, ReplyTemplate
from callable_agents.core.conversation import inbox, media, people
from callable_agents.core.conversation.templates import available_templates
from callable_agents.core.errors import CallableError, InvalidInput, NotFound
from callable_agents.core.models import Channel
from callable_agents.core.runtime import Runtime, runtime_of
from callable_agents.core.store.users import SignedIn
from callable_agents.dashboard.conversation_views import (
    AUTHOR_LABELS,
    DELIVERY_LABELS,
    STATUS_LABELS,
    delivery_error_text,
    filters_of,
    query_of,
)
from callable_agents.dashboard.conversations_live import events, stamp
from callable_agents.dashboard.forms import Form
from callable_agents.dashboard.guard import page
from callable_agents.dashboard.rendering import render

async def _channels(runtime: Runtime, workspace_id: str) -> list[tuple[str, str, str]]:
    async with runtime.db.sessions() as session:
        rows = (await session.execute(select(Channel.id, Channel.name, Channel.kind).where(Channel.workspace_id == workspace_id).order_by(Channel.name))).all()
    return [(cid, name, kind) for cid, name, kind in rows]


@page
async def index(request: Request, viewer: SignedIn) -> Response:
    runtime = runtime_of(request)
    since = stamp(datetime.now(timezone.utc))
    filters = filters_of(request, viewer)
    before_value = request.query_params.get("before")
    before = inbox.InboxCursor.decode(before_value) if before_value else None
    listed = await inbox.list_conversations(runtime, viewer.workspace_id, viewer.user_id, filters, before=before)
    context = {
        "section": "conversations",
        "title": "Conversations",
        "page": listed,
        "filters": filters,
        "channels": await _channels(runtime, viewer.workspace_id),
        "status_labels": STATUS_LABELS,
        "author_labels": AUTHOR_LABELS,
        "now": datetime.now(timezone.utc),
        "first_page": before is None,
        "events_url": "/dashboard/conversations/events?" + query_of(filters, viewer, since=since),
        "next_url": "/dashboard/conversations?" + query_of(filters, viewer, before=listed.next_cursor.encode()) if listed.next_cursor else "",
    }
    return render(request, "conversations/index.html", context)


async def view_context(request: Request, viewer: SignedIn, conversation_id: str, reply_form: Form | None = None, note_form: Form | None = None) -> dict[str, Any]:
    runtime = runtime_of(request)
    since = stamp(datetime.now(timezone.utc))
    detail = await inbox.read_conversation(runtime, viewer.workspace_id, viewer.user_id, conversation_id)
    if detail.messages:
        await people.mark_read(runtime, viewer.workspace_id, conversation_id, viewer.user_id, detail.messages[-1].id)
    channel_type = runtime.plugins.channels.types.get(detail.row.channel_kind)
    hours = channel_type.capabilities.reply_window_hours if channel_type else None
    outside = people.outside_reply_window(hours, detail.row.last_inbound_at)
    templates = await _templates(runtime, detail.row.channel_id) if outside else []
    return {
        "section": "conversations",
        "title": f"Conversation with {detail.row.customer_name or detail.row.customer_id}",
        "detail": detail,
        "row": detail.row,
        "status_labels": STATUS_LABELS,
        "delivery_labels": DELIVERY_LABELS,
        "error_text": lambda message: delivery_error_text(runtime, detail.row.channel_kind, message.error_code, message.error_message),
        "now": datetime.now(timezone.utc),
        "outside_window": outside,
        "window_hours": hours,
        "templates": templates,
        "reply_form": reply_form or Form(),
        "note_form": note_form or Form(),
        "events_url": "/dashboard/conversations/events?" + urlencode({"open": conversation_id, "since": since}),
    }


async def _templates(runtime: Runtime, channel_id: str) -> list[ReplyTemplate]:
    """The channel's configured template first, then its provider account's approved ones."""
    async with runtime.db.sessions() as session:
        channel = await session.get(Channel, channel_id)
    return await available_templates(runtime, channel) if channel is not None else []


def _template_variables(form: Form, template_id: str) -> dict[str, str]:
    """The values typed for the chosen template's variables (fields ``variables.<id>.<name>``)."""
    prefix = f"variables.{template_id}."
    return {key[len(prefix):]: value for key, value in form.values.items() if key.startswith(prefix)}


@page
async def view(request: Request, viewer: SignedIn) -> Response:
    context = await view_context(request, viewer, request.path_params["conversation_id"])
    return render(request, "conversations/view.html", context)


def _person(viewer: SignedIn) -> people.Person:
    return people.Person(viewer.user_id, viewer.display_name)


def _back(conversation_id: str) -> Response:
    return RedirectResponse(f"/dashboard/conversations/{conversation_id}", status_code=303)


@page
async def take_over(request: Request, viewer: SignedIn) -> Response:
    conversation_id = request.path_params["conversation_id"]
    await people.take_over(runtime_of(request), viewer.workspace_id, conversation_id, _person(viewer))
    return _back(conversation_id)


@page
async def reply(request: Request, viewer: SignedIn) -> Response:
    conversation_id = request.path_params["conversation_id"]
    form = await Form.read(request)
    text = form.text("text", label="text", max_length=4000)
    template_id = form.get("template") or None
    if form.ok:
        try:
            variables = _template_variables(form, template_id) if template_id else {}
            await people.reply_as_person(
                runtime_of(request), viewer.workspace_id, conversation_id, _person(viewer), text,
                template_id=template_id, variables=variables or None,
            )
        except InvalidInput as exc:
            form.fail(exc)
    if form.ok:
        return _back(conversation_id)
    context = await view_context(request, viewer, conversation_id, reply_form=form)
    return render(request, "conversations/view.html", context, status_code=422)


@page
async def give_back(request: Request, viewer: SignedIn) -> Response:
    conversation_id = request.path_params["conversation_id"]
    await people.give_back(runtime_of(request), viewer.workspace_id, conversation_id)
    return _back(conversation_id)


@page
async def close(request: Request, viewer: SignedIn) -> Response:
    conversation_id = request.path_params["conversation_id"]
    await people.close(runtime_of(request), viewer.workspace_id, conversation_id)
    return _back(conversation_id)


@page
async def assign(request: Request, viewer: SignedIn) -> Response:
    conversation_id = request.path_params["conversation_id"]
    form = await Form.read(request)
    await people.assign(runtime_of(request), viewer.workspace_id, conversation_id, form.get("assignee") or None)
    return _back(conversation_id)


@page
async def add_note(request: Request, viewer: SignedIn) -> Response:
    conversation_id = request.path_params["conversation_id"]
    form = await Form.read(request)
    text = form.text("note", required=True, label="note", max_length=people.MAX_NOTE)
    if form.ok:
        try:
            await people.add_note(runtime_of(request), viewer.workspace_id, conversation_id, _person(viewer), text)
        except CallableError as exc:
            form.fail(exc)
    if form.ok:
        return RedirectResponse(f"/dashboard/conversations/{conversation_id}#notes", status_code=303)
    context = await view_context(request, viewer, conversation_id, note_form=form)
    return render(request, "conversations/view.html", context, status_code=422)


@page
async def trace(request: Request, viewer: SignedIn) -> Response:
    conversation_id = request.path_params["conversation_id"]
    try:
        turn_id = int(request.path_params["turn_id"])
    except ValueError:
        raise InvalidInput("turn: expected a number") from None
    found = await inbox.read_turn_trace(runtime_of(request), viewer.workspace_id, conversation_id, turn_id)
    return render(request, "conversations/_trace.html", {"trace": found})


@page
async def message_media(request: Request, viewer: SignedIn) -> Response:
    """One media item of a message, downloaded through its channel (the provider's credentials
    stay on the server); a channel type without ``fetch_media``: a redirect to the stored URL."""
    runtime = runtime_of(request)
    try:
        message_id = int(request.path_params["message_id"])
        index = int(request.path_params["index"])
    except ValueError:
        raise NotFound("media not found") from None
    item = await media.read_media_item(runtime, viewer.workspace_id, request.path_params["conversation_id"], message_id, index)
    try:
        fetched = await media.fetch_media_item(runtime, item)
    except ChannelMediaError as exc:
        return PlainTextResponse(f"The media could not be downloaded: {exc}", status_code=502, headers={"Cache-Control": "no-store"})
    if fetched is None:
        if not media.linkable(item.url):
            raise NotFound("media not found")
        return RedirectResponse(item.url, status_code=302)
    return Response(fetched.content, media_type=fetched.content_type, headers=media.media_headers(fetched.content_type))


def routes() -> list[BaseRoute]:
    one = "/conversations/{conversation_id}"
    return [
        Route("/conversations", index, methods=["GET"]),
        Route("/conversations/events", events, methods=["GET"]),
        Route(one, view, methods=["GET"]),
        Route(one + "/takeover", take_over, methods=["POST"]),
        Route(one + "/reply", reply, methods=["POST"]),
        Route(one + "/return", give_back, methods=["POST"]),
        Route(one + "/close", close, methods=["POST"]),
        Route(one + "/assign", assign, methods=["POST"]),
        Route(one + "/notes", add_note, methods=["POST"]),
        Route(one + "/turns/{turn_id}/trace", trace, methods=["GET"]),
        Route(one + "/messages/{message_id}/media/{index}", message_media, methods=["GET"]),
    ]
