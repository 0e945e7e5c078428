"""What one turn did, for the Test panel: its reply, trace, tool calls and a channel preview.

Read, never written: the customer message's ``turn_id`` says the turn has run; its stored
outbound messages are the reply; the ``traces`` row the turn wrote gives the outcome, the
model, the tokens, the passages (source title, URL, score), the tool calls with their
results and the effects. For a turn traced before tool calls were recorded they come from
the conversation's checkpointed history (the AI message's ``tool_calls`` and the tool
messages after the customer's message), as do the latest turn's passage texts.

The preview shapes the stored reply (Markdown, unsplit, its citations in ``meta``) again
with another channel type's capabilities (``core.reply.shape_reply``): that type's
formatting dialect and its split into messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage
from sqlalchemy import select

from callable_agents.core.conversation.turn.memory import Memory
from callable_agents.core.conversation.turn.result import shorten, tool_calls_of
from callable_agents.core.models import Message, Trace
from callable_agents.core.reply import format_for, shape_reply
from callable_agents.core.runtime import Runtime

SHOWN_CHARS = 1500  # of a passage's text or a tool's result


@dataclass(frozen=True)
class PassageView:
    title: str
    url: str
    score: float | None
    text: str = ""


@dataclass(frozen=True)
class ToolCallView:
    name: str
    arguments: str
    result: str = ""


@dataclass(frozen=True)
class ReplyView:
    author: str
    text: str
    effect: str = ""


@dataclass
class TurnView:
    outcome: str
    replies: list[ReplyView]
    passages: list[PassageView]
    tool_calls: list[ToolCallView]
    effects: list[str]
    preview_kind: str
    model: str = ""
    tokens: Mapping[str, int] = field(default_factory=dict)
    preview: list[str] = field(default_factory=list)
    citations: list[Mapping[str, Any]] = field(default_factory=list)


def tool_calls_after(messages: Sequence[BaseMessage], message_id: int) -> list[ToolCallView]:
    """The tool calls (with their results) the agent made answering the customer's message."""
    start = next((i for i, m in enumerate(messages) if isinstance(m, HumanMessage) and m.id == f"msg-{message_id}"), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(messages)) if isinstance(messages[i], HumanMessage)), len(messages))
    return [ToolCallView(**call) for call in tool_calls_of(messages[start + 1 : end], SHOWN_CHARS)]


async def _checkpointed(runtime: Runtime, conversation_id: str) -> Mapping[str, Any]:
    memory = await Memory.of(runtime)
    found = await memory.saver.aget_tuple({"configurable": {"thread_id": conversation_id}})
    if found is None:
        return {}
    values = found.checkpoint.get("channel_values") or {}
    return values if isinstance(values, Mapping) else {}


def preview_parts(runtime: Runtime, kind: str, replies: Sequence[Message]) -> list[str]:
    """The reply as channel type ``kind`` would send it: its parts, in its dialect."""
    if kind not in runtime.plugins.channels:
        return []
    caps = runtime.plugins.channels.get(kind).capabilities
    parts: list[str] = []
    for reply in replies:
        meta = reply.meta or {}
        if reply.author == "agent" and "effect" not in meta:
            parts.extend(
                shape_reply(
                    reply.text or "",
                    dialect=caps.formatting,
                    max_length=caps.max_message_length,
                    citations=meta.get("citations") or [],
                    show_citations=caps.citations,
                )
            )
        elif reply.text:  # a sent item or the handoff notice goes out as it is
            parts.append(format_for(reply.text, caps.formatting))
    return parts


async def read_turn(runtime: Runtime, asked: Message, preview_kind: str) -> TurnView | None:
    """The turn that answered ``asked`` (a customer message), or None while it has not run."""
    async with runtime.db.sessions() as session:
        turn_id = await session.scalar(select(Message.turn_id).where(Message.id == asked.id))
        if turn_id is None:
            return None
        replies = (
            await session.scalars(
                select(Message)
                .where(Message.conversation_id == asked.conversation_id, Message.direction == "outbound", Message.turn_id == turn_id)
                .order_by(Message.id)
            )
        ).all()
        traces = (
            await session.scalars(
                select(Trace).where(Trace.conversation_id == asked.conversation_id, Trace.step == "turn").order_by(Trace.id.desc())
            )
        ).all()
        latest_answered = await session.scalar(
            select(Message.id)
            .where(Message.conversation_id == asked.conversation_id, Message.direction == "inbound", Message.turn_id.is_not(None))
            .order_by(Message.id.desc())
            .limit(1)
        )
    trace = next((t.data for t in traces if t.data.get("job_id") == turn_id), None) or {}
    answered = [int(i) for i in trace.get("answered") or [asked.id]]
    state = await _checkpointed(runtime, asked.conversation_id)
    history = [m for m in state.get("messages") or [] if isinstance(m, BaseMessage)]
    passages = [
        PassageView(title=str(p.get("title") or ""), url=str(p.get("url") or ""), score=p.get("score"))
        for p in trace.get("passages") or []
    ]
    if latest_answered is not None and latest_answered in answered:  # the checkpoint is this turn's
        texts = [str(p.get("text") or "") for p in state.get("passages") or [] if isinstance(p, Mapping)]
        if len(texts) == len(passages):
            passages = [PassageView(p.title, p.url, p.score, shorten(text, SHOWN_CHARS)) for p, text in zip(passages, texts, strict=True)]
    citations: list[Mapping[str, Any]] = []
    for reply in replies:
        citations.extend((reply.meta or {}).get("citations") or [])
    return TurnView(
        outcome=str(trace.get("outcome") or ""),
        # Replies are stored in Markdown; the panel shows them as plain text (the preview shows a dialect).
        replies=[ReplyView(author=m.author, text=format_for(m.text or "", "plain"), effect=str((m.meta or {}).get("effect") or "")) for m in replies],
        passages=passages,
        tool_calls=(
            [ToolCallView(str(c.get("name") or ""), str(c.get("arguments") or ""), str(c.get("result") or "")) for c in trace["tool_calls"]]
            if "tool_calls" in trace
            else tool_calls_after(history, max(answered))
        ),
        model=str(trace.get("model") or ""),
        tokens={str(k): int(v) for k, v in (trace.get("tokens") or {}).items()},
        effects=[str(e) for e in trace.get("effects") or []],
        preview_kind=preview_kind,
        preview=preview_parts(runtime, preview_kind, replies),
        citations=citations,
    )
