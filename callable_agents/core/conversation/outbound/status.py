"""Delivery statuses reported by a channel's provider, applied so they only move forward.

Providers do not promise the order of their status callbacks and may repeat one, so a
message's status is a maximum by rank (the channel gives its provider's ranks as
:class:`DeliveryRanks`, final statuses ranked highest). The rule is one conditional
``UPDATE ... WHERE rank(status) < :rank``, so two callbacks handled at once by two processes
cannot move a status backwards. A change is published to the conversation's live stream.

A report never waits. One for a provider id no stored message carries yet (the provider
called back before its answer to the send was recorded: a slow answer, a Messaging
Service's own callback) is kept in ``early_delivery_statuses`` and applied by
:func:`apply_early_statuses` when the send records the id, by the same rule. It is kept
for :data:`EARLY_STATUS_TTL` (a report for an id no send ever records expires quietly),
and a channel keeps at most :data:`EARLY_STATUS_LIMIT` of them (more are dropped and
logged). No report is lost to the race between the two: the report is committed before it
retries its update, and the send commits the id before it reads the kept reports, so one of
the two sees the other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Delete, case, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.elements import ColumnElement

from callable_agents.core.conversation.streams import StreamHub
from callable_agents.core.models import Channel, EarlyDeliveryStatus, Message, utcnow
from callable_agents.core.runtime import Runtime

log = logging.getLogger(__name__)

# How long a report for a provider id no message carries yet is kept, and how many a
# channel keeps: a send records its id within seconds of the provider's answer.
EARLY_STATUS_TTL = timedelta(minutes=15)
EARLY_STATUS_LIMIT = 10_000


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


def _forward(
    channel_id: str, change: DeliveryStatus, rank: int, ranks: DeliveryRanks
) -> ReturningUpdate[int, str]:
    """The conditional update that moves the message forward to ``change`` (never back)."""
    values: dict[str, object] = {"status": change.status, "updated_at": utcnow()}
    if change.error_code:
        values["error_code"] = change.error_code[:20]
        values["error_message"] = (change.error_message or f"provider error {change.error_code}")[:2000]
    return (
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


def _publish(runtime: Runtime, changed: tuple[int, str], change: DeliveryStatus) -> None:
    message_id, conversation_id = changed
    StreamHub.of(runtime).publish(
        conversation_id,
        {"type": "delivery", "id": message_id, "status": change.status, "code": change.error_code},
    )


async def record_delivery_status(
    runtime: Runtime, channel_id: str, change: DeliveryStatus, ranks: DeliveryRanks
) -> bool:
    """Move the channel's outbound message ``change.provider_message_id`` forward to ``change.status``.

    Returns True when the stored status changed. An unknown status, a stale or repeated
    report, or a message this channel never sent changes nothing. A report for an id no
    message carries yet is kept and applied when a send records it (see the module docs);
    nothing here waits for it.
    """
    rank = ranks.rank(change.status)
    if rank is None:
        log.debug(
            "status report for %s ignored: status %r is not a delivery status", change.provider_message_id, change.status
        )
        return False
    statement = _forward(channel_id, change, rank, ranks)
    async with runtime.db.session() as session:
        changed = (await session.execute(statement)).first()
        if changed is None:
            known = await session.scalar(
                select(Message.id).where(
                    Message.channel_id == channel_id,
                    Message.provider_message_id == change.provider_message_id,
                    Message.direction == "outbound",
                )
            )
            if known is not None:
                return False  # already at this status or further along
    if changed is not None:
        _publish(runtime, (changed[0], changed[1]), change)
        return True
    if not await _keep_early(runtime, channel_id, change, rank):
        return False
    # The send may have recorded the id between the first look and the keep: look again
    # (the kept report is committed, so a send recording it later applies it itself).
    async with runtime.db.session() as session:
        changed = (await session.execute(statement)).first()
        if changed is not None:
            await session.execute(_forget_early(channel_id, change.provider_message_id))
    if changed is None:
        return False
    _publish(runtime, (changed[0], changed[1]), change)
    return True


def _forget_early(channel_id: str, provider_message_id: str) -> Delete:
    return delete(EarlyDeliveryStatus).where(
        EarlyDeliveryStatus.channel_id == channel_id, EarlyDeliveryStatus.provider_message_id == provider_message_id
    )


async def _keep_early(runtime: Runtime, channel_id: str, change: DeliveryStatus, rank: int) -> bool:
    """Keep a report for an id no message carries yet; False when the channel's store is full
    (or the channel is gone). Expired reports are dropped on the way."""
    now = utcnow()
    async with runtime.db.session() as session:
        await session.execute(delete(EarlyDeliveryStatus).where(EarlyDeliveryStatus.received_at < now - EARLY_STATUS_TTL))
        kept = await session.scalar(
            select(func.count()).select_from(EarlyDeliveryStatus).where(EarlyDeliveryStatus.channel_id == channel_id)
        )
        if (kept or 0) >= EARLY_STATUS_LIMIT:
            log.warning(
                "status report for unknown message %s on channel %s dropped: %d reports already wait for their message",
                change.provider_message_id, channel_id, kept,
            )
            return False
        values = select(
            Channel.workspace_id,
            literal(channel_id),
            literal(change.provider_message_id),
            literal(change.status),
            literal(rank),
            literal(change.error_code[:20] if change.error_code else None),
            literal((change.error_message or f"provider error {change.error_code}")[:2000] if change.error_code else None),
            literal(now, EarlyDeliveryStatus.received_at.type),
        ).where(Channel.id == channel_id)
        inserted = await session.execute(
            insert(EarlyDeliveryStatus).from_select(
                ["workspace_id", "channel_id", "provider_message_id", "status", "rank", "error_code", "error_message",
                 "received_at"],
                values,
            )
        )
    if not inserted.rowcount:  # type: ignore[attr-defined]  # sqlalchemy: CursorResult of an insert
        return False
    log.info("status report for message %s on channel %s kept until its send records it", change.provider_message_id, channel_id)
    return True


def has_early_statuses(session: Session, channel_id: str, provider_message_id: str) -> bool:
    """Whether reports wait for ``provider_message_id``: a read, so a send whose id no report
    came early for (nearly every one) costs one statement and no write transaction; only
    then :func:`apply_early_statuses`. Call after the transaction that recorded the id."""
    waiting = select(EarlyDeliveryStatus.id).where(
        EarlyDeliveryStatus.channel_id == channel_id, EarlyDeliveryStatus.provider_message_id == provider_message_id
    )
    return session.execute(waiting.limit(1)).first() is not None


def apply_early_statuses(
    session: Session, channel_id: str, provider_message_id: str, ranks: DeliveryRanks
) -> list[tuple[int, str, DeliveryStatus]]:
    """Apply the reports kept for ``provider_message_id`` (the send just recorded it), highest
    rank first, and forget them. Call in a transaction after the one that recorded the id.

    Returns (message id, conversation id, the report) for each that changed the status.
    """
    kept = session.execute(
        select(EarlyDeliveryStatus)
        .where(EarlyDeliveryStatus.channel_id == channel_id, EarlyDeliveryStatus.provider_message_id == provider_message_id)
        .order_by(EarlyDeliveryStatus.rank.desc(), EarlyDeliveryStatus.id)
    ).scalars().all()
    applied: list[tuple[int, str, DeliveryStatus]] = []
    for report in kept:
        rank = ranks.rank(report.status)
        if rank is None:
            continue
        change = DeliveryStatus(provider_message_id, report.status, report.error_code, report.error_message)
        changed = session.execute(_forward(channel_id, change, rank, ranks)).first()
        if changed is not None:
            applied.append((changed[0], changed[1], change))
    if kept:
        session.execute(_forget_early(channel_id, provider_message_id))
    return applied


def publish_applied(runtime: Runtime, applied: list[tuple[int, str, DeliveryStatus]]) -> None:
    """Tell the conversations' live streams about early reports :func:`apply_early_statuses` applied."""
    for message_id, conversation_id, change in applied:
        _publish(runtime, (message_id, conversation_id), change)
