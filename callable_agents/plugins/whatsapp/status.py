"""Delivery statuses from Twilio's status callbacks, applied so they only move forward.

Twilio does not promise the order of status callbacks, and may send one more than once,
so a message's status is a maximum by rank: ``queued < sending < sent < delivered < read``,
with ``failed``, ``undelivered`` and ``canceled`` final (they replace any earlier status and
are never replaced). The rule is one conditional ``UPDATE ... WHERE rank(status) < :rank``,
so two callbacks handled at once by two processes cannot move a status backwards.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import case, select, update

from callable_agents.core.models import Message, utcnow
from callable_agents.core.runtime import Runtime
from callable_agents.core.conversation.streams import StreamHub

log = logging.getLogger(__name__)

FINAL_RANK = 100
STATUS_RANKS: dict[str, int] = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "partially_delivered": 4,
    "read": 5,
    "failed": FINAL_RANK,
    "undelivered": FINAL_RANK,
    "canceled": FINAL_RANK,
}
FINAL_STATUSES = frozenset(status for status, rank in STATUS_RANKS.items() if rank == FINAL_RANK)

# A callback can beat the send job's own write of the MessageSid by a few milliseconds
# (Twilio answers the create, then calls back while we are still committing): wait a little.
NOT_YET_STORED_WAITS = (0.05, 0.1, 0.25, 0.6)

_rank_of_stored = case(STATUS_RANKS, value=Message.status, else_=0)


@dataclass(frozen=True)
class StatusUpdate:
    """One status callback, as it matters to us."""

    message_sid: str
    status: str
    error_code: str | None = None
    error_message: str | None = None


def status_rank(status: str) -> int | None:
    """The rank of a Twilio message status, or None for one that isn't about delivery."""
    return STATUS_RANKS.get(status)


async def apply_status(runtime: Runtime, channel_id: str, change: StatusUpdate) -> bool:
    """Move the channel's outbound message ``change.message_sid`` forward to ``change.status``.

    Returns True when the stored status changed. An unknown status, a stale or repeated
    callback, or a message this channel never sent changes nothing.
    """
    rank = status_rank(change.status)
    if rank is None:
        log.debug("status callback for %s ignored: status %r is not a delivery status", change.message_sid, change.status)
        return False
    values: dict[str, object] = {"status": change.status, "updated_at": utcnow()}
    if change.error_code:
        values["error_code"] = change.error_code[:20]
        values["error_message"] = (change.error_message or f"Twilio error {change.error_code}")[:2000]
    statement = (
        update(Message)
        .where(
            Message.channel_id == channel_id,
            Message.provider_message_id == change.message_sid,
            Message.direction == "outbound",
            _rank_of_stored < rank,
        )
        .values(**values)
        .returning(Message.id, Message.conversation_id)
        .execution_options(synchronize_session=False)
    )
    for wait in (*NOT_YET_STORED_WAITS, None):
        async with runtime.db.session() as session:
            changed = (await session.execute(statement)).first()
            if changed is not None:
                break
            known = await session.scalar(
                select(Message.id).where(
                    Message.channel_id == channel_id,
                    Message.provider_message_id == change.message_sid,
                    Message.direction == "outbound",
                )
            )
        if known is not None:
            return False  # already at this status or further along
        if wait is None:
            log.info("status callback for unknown message %s on channel %s ignored", change.message_sid, channel_id)
            return False
        await asyncio.sleep(wait)
    assert changed is not None  # the loop ends on a changed row or returns
    message_id, conversation_id = changed
    StreamHub.of(runtime).publish(
        conversation_id,
        {"type": "delivery", "id": message_id, "status": change.status, "code": change.error_code},
    )
    return True
