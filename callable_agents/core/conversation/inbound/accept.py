"""Accepting a customer's message: stored with its turn job, committed before the call returns.

A channel plugin calls :func:`accept_inbound` and answers its provider at once; nothing on
the request path waits for the model. Dedupe is a unique constraint on (channel, provider
message id), so a retried webhook is recognised atomically and never answered twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from callable_agents.core.conversation.inbound.writer import ChannelRef, InboundMessage, InboundWriter, announce_received
from callable_agents.core.observability.metrics import count_duplicate
from callable_agents.core.observability.pipeline import traced_inbound
from callable_agents.core.runtime import Runtime


@dataclass(frozen=True)
class Accepted:
    message_id: int
    conversation_id: str
    duplicate: bool  # True: this provider message id was accepted before; nothing was added


async def accept_inbound(runtime: Runtime, channel: ChannelRef, inbound: InboundMessage) -> Accepted:
    """Store a customer's message and its turn job, committed before this returns.

    Returns ``duplicate=True`` (and stores nothing) when this provider message id was
    accepted before on this channel. Concurrent calls are written together in one
    transaction by the process's :class:`InboundWriter` (group commit).
    """
    stored = await InboundWriter.of(runtime).submit(channel, traced_inbound(inbound))
    if stored.duplicate:
        count_duplicate(channel.kind)
    else:
        await announce_received(runtime, channel, stored, inbound)
    return Accepted(stored.message_id, stored.conversation_id, duplicate=stored.duplicate)
