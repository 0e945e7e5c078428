"""A person in the conversation: their replies from the inbox, taking over, giving it back.

A person's reply is stored and sent through the same outbound path as the agent's
(:mod:`.outbound.send`). While a conversation is handed off the agent is silent; given back,
the next turn carries what the person saw and said into the agent's history.
"""

from __future__ import annotations

from sqlalchemy import select, update

from callable_agents.core.contracts.events import HandoffEvent
from callable_agents.core.conversation.outbound.send import SEND_JOB, emit_reply_sent, new_outbound, send_lane
from callable_agents.core.conversation.streams import StreamHub
from callable_agents.core.conversation.turn.load import HANDLED_BY_PERSON
from callable_agents.core.errors import InvalidInput, NotFound
from callable_agents.core.jobs import enqueue, wake_worker
from callable_agents.core.models import Channel, Conversation, Message
from callable_agents.core.observability.metrics import count_handoff
from callable_agents.core.runtime import Runtime


async def send_human_reply(runtime: Runtime, workspace_id: str, conversation_id: str, text: str, *, author_name: str = "") -> Message:
    """A person's reply: stored and sent through the same outbound path as the agent's."""
    if not text.strip():
        raise InvalidInput("text: expected a non-empty reply")
    async with runtime.db.session() as session:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.id == conversation_id, Conversation.workspace_id == workspace_id)
        )
        if conversation is None:
            raise NotFound(f"conversation {conversation_id!r} not found")
        channel = await session.get(Channel, conversation.channel_id)
        assert channel is not None
        message = new_outbound(channel, conversation_id, "human", text, meta={"by": author_name} if author_name else {})
        delivered_by_storing = runtime.plugins.channels.get(channel.kind).send is None
        if delivered_by_storing:
            message.status = "delivered"
        session.add(message)
        await session.flush()
        if not delivered_by_storing:
            enqueue(session, workspace_id, SEND_JOB, {"message_id": message.id}, lane=send_lane(conversation_id))
    StreamHub.of(runtime).publish(conversation_id, {"type": "message", "id": message.id, "author": "human", "text": text, "media": [], "meta": message.meta})
    if delivered_by_storing:
        await emit_reply_sent(runtime, channel, message)
    else:
        wake_worker(runtime)
    return message


async def hand_off(runtime: Runtime, workspace_id: str, conversation_id: str, reason: str) -> None:
    """A person takes the conversation over (from the inbox): the agent stops answering."""
    await _set_status(runtime, workspace_id, conversation_id, "human", reason)


async def return_to_agent(runtime: Runtime, workspace_id: str, conversation_id: str) -> None:
    """Give a handed-off conversation back to the agent.

    Customer messages a person saw during the handoff are marked answered; the next turn
    carries them and the person's replies into the agent's history.
    """
    await _set_status(runtime, workspace_id, conversation_id, "bot", None)


async def _set_status(runtime: Runtime, workspace_id: str, conversation_id: str, status: str, reason: str | None) -> None:
    async with runtime.db.session() as session:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.id == conversation_id, Conversation.workspace_id == workspace_id)
        )
        if conversation is None:
            raise NotFound(f"conversation {conversation_id!r} not found")
        previous = conversation.status
        conversation.status = status
        conversation.handoff_reason = reason
        if status == "bot" and previous == "human":
            await session.execute(
                update(Message)
                .where(Message.conversation_id == conversation_id, Message.author == "customer", Message.turn_id.is_(None))
                .values(turn_id=HANDLED_BY_PERSON)
            )
        channel_id = conversation.channel_id
    StreamHub.of(runtime).publish(conversation_id, {"type": "status", "status": status})
    if previous != status:
        if status == "human":
            count_handoff("person")
        event = HandoffEvent(workspace_id=workspace_id, channel_id=channel_id, conversation_id=conversation_id, reason=reason or "")
        await runtime.plugins.emit("conversation_handed_off" if status == "human" else "conversation_returned", event=event)
