"""Pacing Twilio sends to the throughput Twilio documents, so a burst meets no 429.

A WhatsApp sender takes 80 messages a second by default (text-only senders can be raised to
400 on request); an account's REST API answers 429 / 20429 beyond its concurrency. A burst of
replies to many customers (an announcement, a busy hour) would otherwise reach Twilio all at
once and be throttled, each refused create backing off on ``Retry-After``. So every create
first takes a slot from :class:`SendPacer`:

* per sender (``From``): at most ``CALLABLE_TWILIO_SENDER_SENDS_PER_SECOND`` (80) in any
  second, evenly spaced. A send through a Messaging Service is not paced per sender: Twilio
  queues the service's messages itself and picks the sender.
* per account: at most ``CALLABLE_TWILIO_ACCOUNT_SENDS_PER_SECOND`` (off by default) for
  every send of the account, Messaging Services included.

A window of one second plus :data:`NETWORK_SLACK` is kept, so requests that take a little
longer on the way than the one a second before them still arrive within the rate. Slots are
handed out in the order sends ask for them, and a conversation's sends run one at a time
in their own lane, so a customer's parts keep their order. Pacing is per process: with
several worker processes sending for the same sender, give each its share of the rate. A
429 / 20429 / 63018 that still comes back is retried after ``Retry-After``, as before.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

NETWORK_SLACK = 0.05  # seconds added to the one-second window: jitter on the way to Twilio


@dataclass
class _Lane:
    """One paced key's recent slots (monotonic times), newest last."""

    rate: float
    slots: deque[float] = field(default_factory=deque)

    def next_slot(self, earliest: float) -> float:
        """The first time not before ``earliest`` this lane can hand out (taking it is separate)."""
        slot = earliest
        if self.slots:
            slot = max(slot, self.slots[-1] + 1.0 / self.rate)  # evenly spaced
        limit = int(self.rate) if self.rate >= 1 else 1
        if len(self.slots) >= limit:  # at most `rate` in any window of 1 s + slack
            slot = max(slot, self.slots[-limit] + 1.0 + NETWORK_SLACK)
        return slot

    def take(self, slot: float) -> None:
        self.slots.append(slot)
        while len(self.slots) > max(int(self.rate), 1) + 1:
            self.slots.popleft()


class SendPacer:
    """Slots for Twilio creates, per sender and per account (see the module docs)."""

    def __init__(self) -> None:
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._lock = asyncio.Lock()

    def _lane(self, kind: str, key: str, rate: float) -> _Lane:
        lane = self._lanes.get((kind, key))
        if lane is None or lane.rate != rate:
            lane = self._lanes[(kind, key)] = _Lane(rate)
        return lane

    async def wait_for_slot(
        self, *, account_sid: str, sender: str | None, sender_rate: float | None, account_rate: float | None
    ) -> float:
        """Wait until a create from ``sender`` (None: a Messaging Service) of ``account_sid``
        may go; returns the seconds waited. A rate of None does not pace that key."""
        lanes: list[_Lane] = []
        if sender is not None and sender_rate:
            lanes.append(self._lane("sender", f"{account_sid}:{sender}", sender_rate))
        if account_rate:
            lanes.append(self._lane("account", account_sid, account_rate))
        if not lanes:
            return 0.0
        async with self._lock:  # slots are handed out in the order they are asked for
            now = time.monotonic()
            slot = now
            for lane in lanes:  # each lane only sets a lower bound, so one pass finds the slot
                slot = lane.next_slot(slot)
            for lane in lanes:
                lane.take(slot)
        wait = slot - now
        if wait > 0:
            await asyncio.sleep(wait)
        return max(wait, 0.0)
