"""The builder's Test panel: chat with an agent through the real pipeline and see each turn.

A message typed in the panel is accepted on the agent's test channel
(:mod:`callable_agents.core.store.test_channel`) with ``accept_inbound``, exactly like a
customer's; the worker runs the turn (retrieval, the model or offline mode, the tools) and
stores the reply. The panel polls (HTMX, ``load delay``) until the turn has answered the
message, then shows the reply, the turn's trace (:mod:`.turn_trace`: passages with their
sources and scores, tool calls with their results, the outcome) and a preview of the reply as
a chosen channel type would shape it (its formatting dialect and its split into messages,
through ``core.reply.shape_reply`` with that type's capabilities). The channel types are the
loaded plugins' (``runtime.plugins.channels``); none is named here.

Each page load is a new test conversation (a fresh ``session`` in the form), so earlier tests
do not colour the next one.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from callable_agents.core.conversation.inbound import InboundMessage, accept_inbound
from callable_agents.core.errors import InvalidInput, NotFound
from callable_agents.core.models import Channel, Message
from callable_agents.core.runtime import Runtime, runtime_of
from callable_agents.core.store.test_channel import TEST_CHANNEL_KIND, agent_test_channel
from callable_agents.core.store.users import SignedIn
from callable_agents.dashboard.agent_lookup import agent_in_workspace
from callable_agents.dashboard.forms import Form
from callable_agents.dashboard.guard import page
from callable_agents.dashboard.rendering import render
from callable_agents.dashboard.turn_trace import read_turn

MAX_TEST_MESSAGE = 4000
POLL_LIMIT = 150  # about two minutes of polling before the panel stops waiting
_SESSION = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def preview_kinds(runtime: Runtime) -> list[tuple[str, str]]:
    """The channel types a reply can be previewed as: (name, description), the test channel left out."""
    return [(t.name, t.description) for t in sorted(runtime.plugins.channels, key=lambda t: t.name) if t.name != TEST_CHANNEL_KIND]


def default_preview(runtime: Runtime) -> str:
    """The type whose shaping shows most: the one with the shortest message limit, if any."""
    kinds = [t for t in runtime.plugins.channels if t.name != TEST_CHANNEL_KIND]
    limited = sorted((t for t in kinds if t.capabilities.max_message_length), key=lambda t: (t.capabilities.max_message_length or 0, t.name))
    if limited:
        return limited[0].name
    return sorted(t.name for t in kinds)[0] if kinds else ""


def chosen_preview(runtime: Runtime, value: str) -> str:
    known = {name for name, _ in preview_kinds(runtime)}
    return value if value in known else default_preview(runtime)


async def _agent(request: Request, viewer: SignedIn) -> tuple[Runtime, str, str]:
    """(runtime, agent id, agent kind) of the path's agent in the viewer's workspace."""
    runtime = runtime_of(request)
    async with runtime.db.sessions() as session:
        agent = await agent_in_workspace(session, viewer.workspace_id, request.path_params["agent_id"])
        return runtime, agent.id, agent.kind


@page
async def send(request: Request, viewer: SignedIn) -> Response:
    """Accept the typed message on the agent's test channel; answer with the pending turn."""
    runtime, agent_id, kind = await _agent(request, viewer)
    form = await Form.read(request)
    text = form.text("text", required=True, label="message", max_length=MAX_TEST_MESSAGE)
    session_id = form.get("session")
    if not _SESSION.match(session_id):
        raise InvalidInput("session: reload the page to start a test conversation")
    if kind != "chat":
        raise InvalidInput(f"a {kind} agent answers phone calls; the Test panel chats with chat agents")
    preview = chosen_preview(runtime, form.get("preview"))
    if not form.ok:
        return render(request, "agents/_test_error.html", {"form": form}, status_code=422)
    async with runtime.db.session() as session:
        agent = await agent_in_workspace(session, viewer.workspace_id, agent_id)
        channel = await agent_test_channel(session, runtime, agent)
    accepted = await accept_inbound(
        runtime, channel, InboundMessage(external_user_id=f"dashboard:{viewer.user_id}:{session_id}", text=text)
    )
    context = {"agent_id": agent_id, "message_id": accepted.message_id, "text": text, "preview": preview, "attempt": 0, "turn": None}
    return render(request, "agents/_turn.html", context)


@page
async def poll(request: Request, viewer: SignedIn) -> Response:
    """The turn that answers a test message: still pending (poll again) or done (shown)."""
    runtime, agent_id, _kind = await _agent(request, viewer)
    try:
        message_id = int(request.path_params["message_id"])
        attempt = int(request.query_params.get("attempt", "0"))
    except ValueError:
        raise NotFound("message not found") from None
    async with runtime.db.sessions() as session:
        asked = await session.scalar(select(Message).where(Message.id == message_id, Message.workspace_id == viewer.workspace_id))
        channel = None if asked is None else await session.get(Channel, asked.channel_id)
    if asked is None or channel is None or channel.agent_id != agent_id or channel.kind != TEST_CHANNEL_KIND:
        raise NotFound("message not found in this agent's test conversations")
    preview = chosen_preview(runtime, request.query_params.get("preview", ""))
    turn = await read_turn(runtime, asked, preview)
    context = {
        "agent_id": agent_id,
        "message_id": message_id,
        "text": asked.text,
        "preview": preview,
        "attempt": attempt + 1,
        "turn": turn,
        "gave_up": turn is None and attempt + 1 >= POLL_LIMIT,
    }
    return render(request, "agents/_turn.html", context)


def routes() -> list[BaseRoute]:
    return [
        Route("/agents/{agent_id}/test", send, methods=["POST"]),
        Route("/agents/{agent_id}/test/{message_id}", poll, methods=["GET"]),
    ]
