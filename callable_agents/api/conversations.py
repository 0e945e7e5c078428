"""The conversation inbox in the admin API: list and read conversations, take over, reply,
give back, close, assign, and internal notes — what the dashboard's inbox does, over HTTP.

The same service layer serves both (:mod:`callable_agents.core.conversation.inbox` for
reads, :mod:`callable_agents.core.conversation.people` for actions). A person's replies go
out through the same outbound path (jobs, the channel's ``send``) as the agent's; replying
to a conversation the agent has takes it over first; outside a channel's reply window only
one of its templates can be sent. An API key acts for the workspace, so a caller names the
person (``author_name``, optionally ``user_id``, a member).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.api.requests import authenticated, json_body
from callable_agents.core.conversation import inbox, people
from callable_agents.core.errors import InvalidInput
from callable_agents.core.conversation.templates import available_templates, template_view
from callable_agents.core.models import Channel, Message, Trace, User, Workspace
from callable_agents.core.runtime import Runtime, runtime_of

STATUSES = inbox.STATUSES
MAX_PAGE = inbox.MAX_PAGE_SIZE


def row_view(row: inbox.InboxRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel_id": row.channel_id,
        "channel": {"id": row.channel_id, "name": row.channel_name, "kind": row.channel_kind},
        "customer": row.customer_id,
        "customer_name": row.customer_name,
        "status": row.status,
        "handoff_reason": row.handoff_reason,
        "assignee_id": row.assignee_id,
        "assignee_name": row.assignee_name,
        "opted_out": row.opted_out,
        "last_message": {"id": row.last_message_id, "author": row.last_author, "text": row.last_text} if row.last_message_id else None,
        "last_inbound_at": row.last_inbound_at.isoformat() if row.last_inbound_at else None,
        "reply_window_closes_at": row.window_closes_at.isoformat() if row.window_closes_at else None,
        "updated_at": row.updated_at.isoformat(),
    }


def message_view(message: Message, error_words: str | None = None) -> dict[str, Any]:
    meta = message.meta or {}
    return {
        "id": message.id,
        "direction": message.direction,
        "author": message.author,
        "author_name": meta.get("by") if message.author == "human" else None,
        "text": message.text,
        "media": message.media,
        "status": message.status,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "error_explained": error_words,
        "template": meta.get("template"),
        "turn_id": message.turn_id if message.turn_id and message.turn_id > 0 else None,
        "citations": meta.get("citations", []),
        "created_at": message.created_at.isoformat(),
    }


def _bool(value: str | None, name: str) -> bool:
    if value in (None, "", "0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise InvalidInput(f"{name}: expected true or false, got {value!r}")


async def list_conversations(request: Request, workspace: Workspace) -> Response:
    """
    summary: Conversations of every channel, newest activity first, a page at a time.
    description: >
      Filters: status (bot, human or closed), channel (a channel id), assignee (a member's
      id), needs_person (handed off and unassigned), q (a name, number or words in a
      message). Pass next_before back as before for the next page; limit is 1 to 200.
    responses:
      200: {description: "conversations with channel, customer, last message, assignee and reply window; next_before"}
      422: {description: "a filter's value is not one it takes"}
    """
    params = request.query_params
    try:
        limit = int(params.get("limit") or inbox.PAGE_SIZE)
    except ValueError:
        raise InvalidInput("limit: expected a whole number from 1 to 200") from None
    filters = inbox.InboxFilters(
        status=params.get("status") or None,
        channel_id=params.get("channel") or None,
        assignee_id=params.get("assignee") or None,
        needs_person=_bool(params.get("needs_person"), "needs_person"),
        search=(params.get("q") or "").strip(),
    )
    before = inbox.InboxCursor.decode(params["before"]) if params.get("before") else None
    listed = await inbox.list_conversations(runtime_of(request), workspace.id, None, filters, before=before, limit=limit)
    return JSONResponse(
        {
            "conversations": [row_view(row) for row in listed.rows],
            "next_before": listed.next_cursor.encode() if listed.next_cursor else None,
        }
    )


def _error_words(runtime: Runtime, kind: str, message: Message) -> str | None:
    if not message.error_code:
        return None
    channel_type = runtime.plugins.channels.types.get(kind)
    return channel_type.describe_delivery_error(message.error_code) if channel_type and channel_type.describe_delivery_error else None


async def get_conversation(request: Request, workspace: Workspace) -> Response:
    """
    summary: One conversation with its messages, notes, reply window and templates, and each turn's trace.
    responses:
      200: {description: "the conversation"}
      404: {description: "not in this workspace"}
    """
    runtime = runtime_of(request)
    conversation_id = request.path_params["conversation_id"]
    detail = await inbox.read_conversation(runtime, workspace.id, None, conversation_id)
    row = detail.row
    channel_type = runtime.plugins.channels.types.get(row.channel_kind)
    async with runtime.db.sessions() as session:
        channel = await session.get(Channel, row.channel_id)
        traces = (
            await session.scalars(
                select(Trace).where(Trace.workspace_id == workspace.id, Trace.conversation_id == conversation_id).order_by(Trace.id)
            )
        ).all()
    templates = await available_templates(runtime, channel) if channel is not None else []
    hours = channel_type.capabilities.reply_window_hours if channel_type else None
    return JSONResponse(
        {
            **row_view(row),
            "reply_window": {
                "hours": hours,
                "open": not people.outside_reply_window(hours, row.last_inbound_at),
                "closes_at": row.window_closes_at.isoformat() if row.window_closes_at else None,
            },
            "templates": [template_view(t) for t in templates],
            "messages": [message_view(m, _error_words(runtime, row.channel_kind, m)) for m in detail.messages],
            "notes": [{"id": n.id, "author_name": n.author_name, "text": n.text, "created_at": n.created_at.isoformat()} for n in detail.notes],
            "trace": [{"step": t.step, "data": t.data, "at": t.created_at.isoformat()} for t in traces],
        }
    )


async def _person(request: Request, workspace: Workspace, body: dict[str, Any]) -> people.Person:
    name = body.get("author_name", "")
    if not isinstance(name, str) or len(name) > 200:
        raise InvalidInput("author_name: expected a string of at most 200 characters")
    user_id = body.get("user_id")
    if user_id is None:
        return people.Person(None, name.strip())
    if not isinstance(user_id, str):
        raise InvalidInput("user_id: expected a member's id (a string)")
    async with runtime_of(request).db.sessions() as session:
        found = await session.scalar(select(User).where(User.id == user_id, User.workspace_id == workspace.id))
    if found is None:
        raise InvalidInput(f"user_id: no member {user_id!r} in this workspace")
    return people.Person(found.id, name.strip() or found.name or found.email)


async def take_over(request: Request, workspace: Workspace) -> Response:
    """
    summary: A person takes the conversation over; the agent stops answering and the customer gets the takeover notice once.
    description: "Body: {reason?, author_name?, user_id?}."
    responses:
      200: {description: "status human; taken_over is false when a person already had it"}
      404: {description: "not in this workspace"}
    """
    body = await json_body(request)
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise InvalidInput("reason: expected a string")
    person = await _person(request, workspace, body)
    changed = await people.take_over(runtime_of(request), workspace.id, request.path_params["conversation_id"], person, reason.strip())
    return JSONResponse({"status": "human", "taken_over": changed})


async def reply(request: Request, workspace: Workspace) -> Response:
    """
    summary: Send a person's reply to the customer, taking the conversation over first if the agent has it.
    description: >
      Body: {text, author_name?, user_id?, template?, variables?}. Outside the channel's reply
      window free text is refused (422, naming why); send one of the conversation's templates
      (template: its id; text: what goes in the configured template's reply variable, if it
      takes one; variables: {name: value} for each variable of one of the account's approved
      templates).
    responses:
      202: {description: "stored and queued for delivery; took_over says whether it was taken over"}
      404: {description: "not in this workspace"}
      422: {description: "empty text, outside the reply window, or an unknown template"}
    """
    body = await json_body(request)
    text = body.get("text", "")
    if not isinstance(text, str):
        raise InvalidInput("text: expected a string")
    template = body.get("template")
    if template is not None and not isinstance(template, str):
        raise InvalidInput("template: expected a template id (a string)")
    variables = body.get("variables")
    if variables is not None and (not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values())):
        raise InvalidInput("variables: expected an object of variable name → text")
    if not template and not text.strip():
        raise InvalidInput("text: expected a non-empty string")
    person = await _person(request, workspace, body)
    sent = await people.reply_as_person(
        runtime_of(request), workspace.id, request.path_params["conversation_id"], person, text,
        template_id=template or None, variables=variables,
    )
    return JSONResponse({"message_id": sent.message_id, "took_over": sent.took_over}, status_code=202)


async def give_back(request: Request, workspace: Workspace) -> Response:
    """
    summary: Return a conversation a person has to the agent; the customer gets the return notice.
    responses:
      200: {description: "the agent answers again"}
      404: {description: "not in this workspace"}
      422: {description: "no person has the conversation"}
    """
    await people.give_back(runtime_of(request), workspace.id, request.path_params["conversation_id"])
    return JSONResponse({"status": "bot"})


async def close(request: Request, workspace: Workspace) -> Response:
    """
    summary: Close the conversation.
    responses:
      200: {description: "closed"}
      404: {description: "not in this workspace"}
    """
    await people.close(runtime_of(request), workspace.id, request.path_params["conversation_id"])
    return JSONResponse({"status": "closed"})


async def assign(request: Request, workspace: Workspace) -> Response:
    """
    summary: Assign the conversation to a member. Body {user_id} (null for nobody).
    responses:
      200: {description: "assigned"}
      404: {description: "not in this workspace"}
      422: {description: "user_id is not a member of this workspace"}
    """
    body = await json_body(request)
    if "user_id" not in body:
        raise InvalidInput("user_id: required (a member's id, or null for nobody)")
    user_id = body["user_id"]
    if user_id is not None and not isinstance(user_id, str):
        raise InvalidInput("user_id: expected a member's id (a string) or null")
    await people.assign(runtime_of(request), workspace.id, request.path_params["conversation_id"], user_id)
    return JSONResponse({"assignee_id": user_id})


async def add_note(request: Request, workspace: Workspace) -> Response:
    """
    summary: Add an internal note, never sent to the customer. Body {text, author_name?, user_id?}.
    responses:
      201: {description: "the note"}
      404: {description: "not in this workspace"}
      422: {description: "empty or too long"}
    """
    body = await json_body(request)
    text = body.get("text")
    if not isinstance(text, str):
        raise InvalidInput("text: expected a string")
    person = await _person(request, workspace, body)
    note = await people.add_note(runtime_of(request), workspace.id, request.path_params["conversation_id"], person, text)
    return JSONResponse({"id": note.id, "text": note.text, "author_name": note.author_name}, status_code=201)


def conversation_routes() -> list[BaseRoute]:
    prefix = "/conversations/{conversation_id}"
    return [
        Route("/conversations", authenticated(list_conversations), methods=["GET"]),
        Route(prefix, authenticated(get_conversation), methods=["GET"]),
        Route(prefix + "/takeover", authenticated(take_over), methods=["POST"]),
        Route(prefix + "/reply", authenticated(reply), methods=["POST"]),
        Route(prefix + "/return", authenticated(give_back), methods=["POST"]),
        Route(prefix + "/close", authenticated(close), methods=["POST"]),
        Route(prefix + "/assign", authenticated(assign), methods=["POST"]),
        Route(prefix + "/notes", authenticated(add_note), methods=["POST"]),
    ]
