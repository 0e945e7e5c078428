"""Superseding: a customer message that lands while its conversation's turn runs withdraws
that turn (the ``interrupt`` reply policy, :mod:`callable_agents.core.store.reply_policy`).

A person taking the conversation over stops its running turn the same way.

Two guards, so a superseded turn never sends, in one process or many:

* In the process running the turn, :class:`RunningTurns` holds an event per conversation
  whose turn may still be stopped. Storing a customer message publishes a ``supersede``
  signal (:func:`~callable_agents.core.conversation.inbound.writer.announce_received`) and
  a take-over a ``status`` event through the :class:`~..streams.StreamHub`, which reach
  every process on the database (:mod:`~..fanout`); the turn cancels its graph run, model
  call included.
* Wherever the message was filed, the turn's result transaction refuses to commit when the
  conversation has a customer message newer than those the turn answers, or a person has
  it (:func:`stopped_since`, :mod:`.persist`).

Either way the turn's job is done and nothing is stored for it; the turn job the new
message brought answers every unanswered message together (the graph drops what a
withdrawn run left in the checkpoint, :func:`~.graph.retrieve`). A turn stops being
withdrawable by a newer message once a visitor has seen its tokens (streaming channels);
a take-over stops it until it starts to store its result.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session

from callable_agents.core.jobs import lane_busy_exists
from callable_agents.core.models import Conversation, Message
from callable_agents.core.runtime import Runtime


class Superseded(Exception):
    """A newer customer message arrived (or a person took over) before the turn stored
    anything: it sends nothing."""

    def __init__(self, reason: str = "superseded") -> None:
        super().__init__(reason)
        self.reason = reason  # "superseded" or "taken_over"


NOT_WITHDRAWN = 2**63  # no message id is newer: only a take-over stops the turn


class _Watched:
    def __init__(self, answering_up_to: int) -> None:
        self.event = asyncio.Event()
        self.answering_up_to = answering_up_to
        self.reason = "superseded"

    def stop(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()


class RunningTurns:
    """This process's stoppable turns, by conversation id; told by the stream hub's signals
    from any process."""

    def __init__(self) -> None:
        self._watched: dict[str, _Watched] = {}

    @classmethod
    def of(cls, runtime: Runtime) -> RunningTurns:
        def create() -> RunningTurns:
            from callable_agents.core.conversation.streams import StreamHub

            turns = cls()
            StreamHub.of(runtime).listen(turns.on_event)
            return turns

        return runtime.services.shared(cls, create)

    @staticmethod
    def announce(runtime: Runtime, conversation_id: str, message_id: int) -> None:
        """A customer message was stored: tell every process running the conversation's turn."""
        from callable_agents.core.conversation.streams import StreamHub

        RunningTurns.of(runtime)  # this process's turns listen too
        StreamHub.of(runtime).publish(conversation_id, {"type": "supersede", "message_id": message_id})

    def on_event(self, conversation_id: str, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "supersede" and isinstance(event.get("message_id"), int):
            self.supersede(conversation_id, event["message_id"])
        elif kind == "status" and event.get("status") in ("human", "closed"):
            watched = self._watched.get(conversation_id)
            if watched is not None:
                watched.stop("taken_over")

    @contextmanager
    def watch(self, conversation_id: str, answering_up_to: int) -> Iterator[asyncio.Event]:
        """While open, a customer message of the conversation newer than ``answering_up_to``
        (the newest message the turn answers), or a take-over, sets the event."""
        watched = _Watched(answering_up_to)
        self._watched[conversation_id] = watched
        try:
            yield watched.event
        finally:
            self.release(conversation_id, watched.event)

    def reason(self, conversation_id: str, event: asyncio.Event) -> str:
        """Why the turn was stopped: ``superseded`` or ``taken_over``."""
        watched = self._watched.get(conversation_id)
        return watched.reason if watched is not None and watched.event is event else "superseded"

    def settle(self, conversation_id: str, event: asyncio.Event) -> None:
        """A visitor saw the turn's tokens: a newer message no longer withdraws it (a
        take-over still stops it)."""
        watched = self._watched.get(conversation_id)
        if watched is not None and watched.event is event:
            watched.answering_up_to = NOT_WITHDRAWN

    def release(self, conversation_id: str, event: asyncio.Event) -> None:
        """The turn is storing its result (or is over): the result transaction decides."""
        watched = self._watched.get(conversation_id)
        if watched is not None and watched.event is event:
            del self._watched[conversation_id]

    def supersede(self, conversation_id: str, message_id: int) -> None:
        """A customer message was stored: withdraw the conversation's turn if it is newer
        than what that turn answers."""
        watched = self._watched.get(conversation_id)
        if watched is not None and message_id > watched.answering_up_to:
            watched.stop("superseded")


@functools.cache
def _standing_statement() -> Any:
    """The conversation's status, whether an unanswered customer message newer than
    ``after_id`` is there (both guards of the result transaction) and whether the send lane
    ``send_lane`` is busy (what the result's send jobs need to know), in one statement."""
    conversations, messages = Conversation.__table__, Message.__table__
    newer = exists().where(
        messages.c.conversation_id == conversations.c.id,
        messages.c.id > bindparam("after_id"),
        messages.c.author == "customer",
        messages.c.turn_id.is_(None),
    )
    busy = lane_busy_exists(bindparam("send_lane"))
    return select(conversations.c.status, newer, busy).where(conversations.c.id == bindparam("conversation_id"))


def stopped_since(
    session: Session, conversation_id: str, answered_up_to: int | None, send_lane: str
) -> tuple[str | None, bool]:
    """Why the turn must not store its result, or None, and whether ``send_lane`` has a
    pending or running job (read together: one statement of the result transaction).

    ``"superseded"`` when the conversation has an unanswered customer message newer than
    ``answered_up_to`` (None: the turn can't be withdrawn that way), ``"taken_over"`` when a
    person has it (or closed it) since the turn started.
    """
    row = session.execute(
        _standing_statement(),
        {"conversation_id": conversation_id, "after_id": answered_up_to or 0, "send_lane": send_lane},
    ).first()
    status, newer, busy = (None, False, False) if row is None else (row[0], bool(row[1]), bool(row[2]))
    if answered_up_to is not None and newer:
        return "superseded", busy
    if status in ("human", "closed"):
        return "taken_over", busy
    return None, busy
