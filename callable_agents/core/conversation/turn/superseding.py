"""Superseding: a customer message that lands while its conversation's turn runs withdraws
that turn (the ``interrupt`` reply policy, :mod:`callable_agents.core.store.reply_policy`).

Two guards, so a superseded turn never sends, in one process or many:

* In the process running the turn, :class:`RunningTurns` holds an event per conversation
  whose turn may still be withdrawn; storing a customer message sets it
  (:func:`~callable_agents.core.conversation.inbound.writer.announce_received`), and the
  turn cancels its graph run, model call included.
* Wherever the message was filed, the turn's result transaction refuses to commit when the
  conversation has a customer message newer than those the turn answers
  (:func:`newer_message_exists`, :mod:`.persist`).

Either way the turn's job is done and nothing is stored for it; the turn job the new
message brought answers every unanswered message together (the graph drops what a
withdrawn run left in the checkpoint, :func:`~.graph.retrieve`). A turn stops being
withdrawable once a visitor has seen its tokens (streaming channels) or it starts to
store its result.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session

from callable_agents.core.models import Message
from callable_agents.core.runtime import Runtime


class Superseded(Exception):
    """A newer customer message arrived before the turn stored anything: it sends nothing."""


class RunningTurns:
    """This process's withdrawable turns, by conversation id."""

    def __init__(self) -> None:
        self._watched: dict[str, tuple[asyncio.Event, int]] = {}

    @classmethod
    def of(cls, runtime: Runtime) -> RunningTurns:
        return runtime.services.shared(cls, cls)

    @contextmanager
    def watch(self, conversation_id: str, answering_up_to: int) -> Iterator[asyncio.Event]:
        """While open, a customer message of the conversation newer than ``answering_up_to``
        (the newest message the turn answers) sets the event."""
        event = asyncio.Event()
        self._watched[conversation_id] = (event, answering_up_to)
        try:
            yield event
        finally:
            self.settle(conversation_id, event)

    def settle(self, conversation_id: str, event: asyncio.Event) -> None:
        """The turn can no longer be withdrawn (its tokens were seen, or it is storing)."""
        watched = self._watched.get(conversation_id)
        if watched is not None and watched[0] is event:
            del self._watched[conversation_id]

    def supersede(self, conversation_id: str, message_id: int) -> None:
        """A customer message was stored: withdraw the conversation's turn if it is newer
        than what that turn answers."""
        watched = self._watched.get(conversation_id)
        if watched is not None and message_id > watched[1]:
            watched[0].set()


@functools.cache
def _newer_statement() -> Any:
    table = Message.__table__
    return select(
        exists().where(
            table.c.conversation_id == bindparam("conversation_id"),
            table.c.id > bindparam("after_id"),
            table.c.author == "customer",
            table.c.turn_id.is_(None),
        )
    )


def newer_message_exists(session: Session, conversation_id: str, after_id: int) -> bool:
    """Whether the conversation has an unanswered customer message newer than ``after_id``."""
    return bool(session.execute(_newer_statement(), {"conversation_id": conversation_id, "after_id": after_id}).scalar())
