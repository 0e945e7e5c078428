"""Delivery statuses from Twilio's status callbacks, applied so they only move forward.

Twilio does not promise the order of status callbacks, and may send one more than once,
so a message's status is a maximum by rank: ``queued < sending < sent < delivered < read``,
with ``failed``, ``undelivered`` and ``canceled`` final (they replace any earlier status and
are never replaced). Core's ``record_delivery_status`` applies the rule with one conditional
``UPDATE ... WHERE rank(status) < :rank``, so two callbacks handled at once by two processes
cannot move a status backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from callable_agents.plugin import DeliveryRanks, DeliveryStatus, Runtime, record_delivery_status

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

RANKS = DeliveryRanks(STATUS_RANKS)


@dataclass(frozen=True)
class StatusUpdate:
    """One status callback, as it matters to us."""

    message_sid: str
    status: str
    error_code: str | None = None
    error_message: str | None = None


def status_rank(status: str) -> int | None:
    """The rank of a Twilio message status, or None for one that isn't about delivery."""
    return RANKS.rank(status)


async def apply_status(runtime: Runtime, channel_id: str, change: StatusUpdate) -> bool:
    """Move the channel's outbound message ``change.message_sid`` forward to ``change.status``.

    Returns True when the stored status changed. An unknown status, a stale or repeated
    callback, or a message this channel never sent changes nothing.
    """
    error_message = change.error_message or (f"Twilio error {change.error_code}" if change.error_code else None)
    return await record_delivery_status(
        runtime,
        channel_id,
        DeliveryStatus(change.message_sid, change.status, change.error_code, error_message),
        RANKS,
    )
