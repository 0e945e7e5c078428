"""Delivery statuses reported by a channel's provider, applied so they only move forward.

Providers do not promise the order of their status callbacks and may repeat one, so a
message's status is a maximum by rank (the channel gives its provider's ranks as
:class:`DeliveryRanks`, final statuses ranked highest). The rule is one conditional
``UPDATE ... WHERE rank(status) < :rank``, so two callbacks handled at once by two processes
cannot move a status backwards. A change is published to the conversation's live stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import case, select, update
from sqlalchemy.sql.elements import ColumnElement

from callable_agents.core.conversation.streams import StreamHub
from callable_agents.core.models import Message, utcnow
from callable_agents.core.runtime import Runtime

log = logging.getLogger(__name__)

# A callback can beat the send job's own write of the provider's message id by a few
# milliseconds (the provider answers the create, then calls back while we are still
# committing): wait a little.
NOT_YET_STORED_WAITS = (0.05, 0.1, 0.25, 0.6)


class DeliveryRanks:
    """A provider's delivery statuses by rank; built once per channel plugin (it holds the SQL)."""

    def __init__(self, ranks: Mapping[str, int]) -> None:
        self.ranks: Mapping[str, int] = dict(ranks)
        self.rank_of_stored: ColumnElement[int] = case(dict(self.ranks), value=Message.status, else_=0)

    def rank(self, status: str) -> int | None:
        """The rank of a status, or None for one that isn't about delivery."""
        return self.ranks.get(status)


@dataclass(frozen=True)
class DeliveryStatus:
    """One status report for an outbound message, identified by the provider's message id."""

    provider_message_id: str
    status: str
    error_code: str | None = None
    error_message: str | None = None


async def record_delivery_status(
    runtime: Runtime, channel_id: str, change: DeliveryStatus, ranks: DeliveryRanks
) -> bool:
    """Move the channel's outbound message ``change.provider_message_id`` forward to ``change.status``.

    Returns True when the stored status changed. An unknown status, a stale or repeated
    report, or a message this channel never sent changes nothing.
    """
    rank = ranks.rank(change.status)
    if rank is None:
        log.debug(
            "status report for %s ignored: status %r is not a delivery status", change.provider_message_id, change.status
        )
        return False
    values: dict[str, object] = {"status": change.status, "updated_at": utcnow()}
    if change.error_code:
        values["error_code"] = change.error_code[:20]
        values["error_message"] = (change.error_message or f"provider error {change.error_code}")[:2000]
    statement = (
        update(Message)
        .where(
            Message.channel_id == channel_id,
            Message.provider_message_id == change.provider_message_id,
            Message.direction == "outbound",
            ranks.rank_of_stored < rank,
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
                    Message.provider_message_id == change.provider_message_id,
                    Message.direction == "outbound",
                )
            )
        if known is not None:
            return False  # already at this status or further along
        if wait is None:
            log.info(
                "status report for unknown message %s on channel %s ignored", change.provider_message_id, channel_id
            )
            return False
        await asyncio.sleep(wait)
    assert changed is not None  # the loop only ends by break or return
    message_id, conversation_id = changed
    StreamHub.of(runtime).publish(
        conversation_id,
        {"type": "delivery", "id": message_id, "status": change.status, "code": change.error_code},
    )
    return True
