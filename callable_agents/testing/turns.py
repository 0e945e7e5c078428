"""One turn of a conversation, through the real pipeline, and what it left behind.

:func:`run_turn` does what ``callable chat`` does for one line: the message is accepted on
the agent's terminal channel (``accept_inbound``: stored with its turn job in one
transaction), the worker runs the jobs of that conversation (the graph: retrieval, the
model, the tools, reply shaping), and the stored reply parts and the turn's trace are read
back. Nothing is patched: a tool runs as it does in production, and a model configured with
:func:`~callable_agents.testing.agents.connect_fake_openai` is called over HTTP.

The terminal channel delivers by storing, so the reply is complete once the turn commits;
a test of another channel's ``send`` drives that channel instead (see ``FakeTwilio``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime
    from callable_agents.testing.agents import AgentRef

TERMINAL_KIND = "terminal"
DEFAULT_USER = "terminal:visitor"
TURN_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class StoredReply:
    """One outbound message the turn stored: an ``agent`` reply part, an item a tool sent, or
    a ``system`` notice (the handoff message)."""

    id: int
    author: str
    text: str
    media: Sequence[Mapping[str, Any]]
    meta: Mapping[str, Any]
    status: str


@dataclass(frozen=True)
class TurnResult:
    """What one turn stored: its reply parts and messages, and its trace.

    ``trace`` is the turn's recorded step (``outcome``, ``tool_rounds``, ``effects``,
    ``passages``, ``parts``, ...), as the dashboard shows it; ``None`` when no turn ran (the
    conversation is with a person, so the message waits in the inbox).
    """

    conversation_id: str
    message_id: int
    messages: tuple[StoredReply, ...]
    trace: Mapping[str, Any] | None
    duplicate: bool = False
    parts: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(m.text for m in self.messages if m.author == "agent" and "effect" not in m.meta))

    @property
    def reply(self) -> str:
        """The agent's reply parts joined by blank lines (the whole answer, as one text)."""
        return "\n\n".join(self.parts)

    @property
    def outcome(self) -> str | None:
        """``answered``, ``offline``, ``fallback``, ... as the trace records it."""
        return None if self.trace is None else self.trace.get("outcome")

    @property
    def tool_rounds(self) -> int:
        return 0 if self.trace is None else int(self.trace.get("tool_rounds") or 0)


async def terminal_channel_id(runtime: Runtime, agent: AgentRef) -> str:
    """The id of the agent's terminal channel, created on first use (as ``callable chat`` does)."""
    from callable_agents.core.store.channels import create_or_update_channel

    async with runtime.db.session() as session:
        channel, _changed = await create_or_update_channel(
            session, runtime, agent.workspace_id, name=f"terminal-{agent.name}"[:100], kind=TERMINAL_KIND, agent=agent.name
        )
        return channel.id


async def run_turn(
    runtime: Runtime,
    agent: AgentRef,
    text: str,
    *,
    user: str = DEFAULT_USER,
    provider_message_id: str | None = None,
    timeout: float = TURN_TIMEOUT_SECONDS,
) -> TurnResult:
    """Send ``text`` from ``user`` to ``agent`` and return what the turn stored.

    The same ``user`` continues the same conversation (the agent remembers earlier turns).
    ``provider_message_id`` is the dedupe key: a repeated one returns ``duplicate=True`` and
    no new reply.
    """
    from sqlalchemy import select

    from callable_agents.core.conversation.inbound import InboundMessage, accept_inbound
    from callable_agents.core.conversation.jobs import register_conversation_jobs
    from callable_agents.core.jobs import Worker
    from callable_agents.core.models import Channel, Message, Trace

    channel_id = await terminal_channel_id(runtime, agent)
    register_conversation_jobs(runtime)
    async with runtime.db.sessions() as session:
        channel = await session.get(Channel, channel_id)
    assert channel is not None
    accepted = await accept_inbound(
        runtime, channel, InboundMessage(external_user_id=user, text=text, provider_message_id=provider_message_id)
    )
    conversation_id = accepted.conversation_id
    if accepted.duplicate:  # accepted before: nothing new was stored, no turn runs for it
        return TurnResult(conversation_id, accepted.message_id, messages=(), trace=None, duplicate=True)
    await Worker(runtime).drain(timeout=timeout, lanes=[conversation_id, f"send:{conversation_id}"])
    async with runtime.db.sessions() as session:
        replies = (
            await session.scalars(
                select(Message)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.direction == "outbound",
                    Message.id > accepted.message_id,
                )
                .order_by(Message.id)
            )
        ).all()
        traces = (
            await session.scalars(
                select(Trace).where(Trace.conversation_id == conversation_id, Trace.step == "turn").order_by(Trace.id)
            )
        ).all()
    trace = next((t.data for t in reversed(traces) if accepted.message_id in (t.data.get("answered") or [])), None)
    return TurnResult(
        conversation_id=conversation_id,
        message_id=accepted.message_id,
        messages=tuple(
            StoredReply(id=m.id, author=m.author, text=m.text, media=list(m.media or []), meta=dict(m.meta or {}), status=m.status)
            for m in replies
        ),
        trace=trace,
    )


@dataclass(frozen=True)
class TurnRunner:
    """:func:`run_turn` bound to one runtime and agent: ``await run("Are you open?")``
    (the ``callable_run_turn`` fixture)."""

    runtime: Runtime
    agent: AgentRef

    async def __call__(self, text: str, *, user: str = DEFAULT_USER, provider_message_id: str | None = None) -> TurnResult:
        return await run_turn(self.runtime, self.agent, text, user=user, provider_message_id=provider_message_id)
