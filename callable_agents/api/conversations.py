"""The conversation inbox in the admin API: read conversations, take over, reply, return.

A person's replies go out through the same outbound path (jobs, the channel's ``send``) as
the agent's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.api.requests import authenticated, json_body
from callable_agents.core.errors import InvalidInput, NotFound
from callable_agents.core.models import Conversation, Message, Trace, Workspace
from callable_agents.core.conversation.people import hand_off, return_to_agent, send_human_reply
from callable_agents.core.runtime import runtime_of

STATUSES = ("bot", "human", "closed")
MAX_PAGE = 200


def conversation_view(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "channel_id": conversation.channel_id,
        "customer": conversation.external_user_id,
        "status": conversation.status,
        "handoff_reason": conversation.handoff_reason,
        "profile": conversation.profile,
        "opted_out": conversation.opted_out,
        "last_inbound_at": conversation.last_inbound_at.isoformat() if conversation.last_inbound_at else None,
        "updated_at": conversation.updated_at.isoformat(),
    }


def message_view(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "direction": message.direction,
        "author": message.author,
        "text": message.text,
        "media": message.media,
        "status": message.status,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "citations": (message.meta or {}).get("citations", []),
        "created_at": message.created_at.isoformat(),
    }


async def list_conversations(request: Request, workspace: Workspace) -> Response:
    """
    summary: Conversations, most recent first; ?status=bot|human|closed filters.
    parameters:
      - {name: status, in: query, required: false, schema: {type: string, enum: [bot, human, closed]}}
    responses:
      200: {description: "a list of conversations"}
    """
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
    query = select(Conversation).where(Conversation.workspace_id == workspace.id)
    if status:
        query = query.where(Conversation.status == status)
    async with runtime_of(request).db.session() as session:
        rows = (await session.scalars(query.order_by(Conversation.updated_at.desc()).limit(MAX_PAGE))).all()
    return JSONResponse({"conversations": [conversation_view(row) for row in rows]})


async def get_conversation(request: Request, workspace: Workspace) -> Response:
    """
    summary: One conversation with its messages and the trace of each turn.
    responses:
      200: {description: "the conversation"}
      404: {description: "not in this workspace"}
    """
    conversation_id = request.path_params["conversation_id"]
    async with runtime_of(request).db.session() as session:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.id == conversation_id, Conversation.workspace_id == workspace.id)
        )
        if conversation is None:
            raise NotFound(f"conversation {conversation_id!r} not found")
        messages = (
            await session.scalars(select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id))
        ).all()
        traces = (
            await session.scalars(select(Trace).where(Trace.conversation_id == conversation.id).order_by(Trace.id))
        ).all()
    return JSONResponse(
        {
            **conversation_view(conversation),
            "messages": [message_view(m) for m in messages],
            "trace": [{"step": t.step, "data": t.data, "at": t.created_at.isoformat()} for t in traces],
        }
    )


async def take_over(request: Request, workspace: Workspace) -> Response:
    """
    summary: A person takes the conversation over; the agent stops answering. Body {reason}.
    responses:
      200: {description: "handed off"}
    """
    body = await json_body(request)
    reason = body.get("reason", "Taken over from the inbox")
    if not isinstance(reason, str):
        raise InvalidInput("reason: expected a string")
    await hand_off(runtime_of(request), workspace.id, request.path_params["conversation_id"], reason)
    return JSONResponse({"status": "human"})


async def reply(request: Request, workspace: Workspace) -> Response:
    """
    summary: Send a person's reply to the customer. Body {text, author_name?}.
    responses:
      202: {description: "stored and queued for delivery"}
    """
    body = await json_body(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("text: expected a non-empty string")
    author_name = body.get("author_name", "")
    if not isinstance(author_name, str):
        raise InvalidInput("author_name: expected a string")
    message = await send_human_reply(
        runtime_of(request), workspace.id, request.path_params["conversation_id"], text, author_name=author_name
    )
    return JSONResponse({"message_id": message.id}, status_code=202)


async def give_back(request: Request, workspace: Workspace) -> Response:
    """
    summary: Return a handed-off conversation to the agent.
    responses:
      200: {description: "the agent answers again"}
    """
    await return_to_agent(runtime_of(request), workspace.id, request.path_params["conversation_id"])
    return JSONResponse({"status": "bot"})


def conversation_routes() -> list[BaseRoute]:
    prefix = "/conversations/{conversation_id}"
    return [
        Route("/conversations", authenticated(list_conversations), methods=["GET"]),
        Route(prefix, authenticated(get_conversation), methods=["GET"]),
        Route(prefix + "/takeover", authenticated(take_over), methods=["POST"]),
        Route(prefix + "/reply", authenticated(reply), methods=["POST"]),
        Route(prefix + "/return", authenticated(give_back), methods=["POST"]),
    ]
