"""What a turn reads before it runs, in one read (two statements: the conversation, its
channel and agent with the customer's unanswered messages and a person's replies since the
last turn; then the choices the agent offered before those messages, what a typed "2"
picks, :mod:`.choices`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import Session, aliased

from callable_agents.core.conversation.turn.choices import OFFER_LOOKBACK, standing_offer
from callable_agents.core.models import Agent, Channel, Conversation, Message

HANDLED_BY_PERSON = 0  # Message.turn_id of customer messages a person answered during a handoff


@dataclass
class TurnInputs:
    """What a turn reads before it runs."""

    conversation: Conversation
    channel: Channel
    agent: Agent
    pending: list[Message]  # the customer's unanswered messages
    context: list[Message]  # a person's replies (and what they answered) since the last turn
    offered: list[dict[str, str]] = field(default_factory=list)  # the choices the pending messages answer, if any


@functools.cache
def _turn_statements() -> tuple[Any, Any]:
    """The reads of :func:`load_turn`, built once (building costs more than running them)."""
    conversation_id = bindparam("conversation_id", type_=Message.conversation_id.type)
    answered = aliased(Message)  # the subquery's own rows, never correlated with the join's
    last_turn_message = (
        select(func.max(answered.id))
        .where(answered.conversation_id == conversation_id, answered.turn_id > 0)
        .correlate(None)
        .scalar_subquery()
    )
    unanswered = and_(Message.author == "customer", Message.turn_id.is_(None))
    from_a_person = and_(
        Message.id > func.coalesce(last_turn_message, 0),
        or_(Message.author == "human", and_(Message.author == "customer", Message.turn_id == HANDLED_BY_PERSON)),
    )
    # The conversation, its channel and agent, and the messages the turn reads, in one
    # statement: a row per message (the header repeated; the session keeps one object of
    # each), or one row with no message.
    header_and_messages = (
        select(Conversation, Channel, Agent, Message)
        .join(Channel, Channel.id == Conversation.channel_id)
        .join(Agent, Agent.id == Channel.agent_id)
        .outerjoin(
            Message,
            and_(Message.conversation_id == Conversation.id, or_(unanswered, from_a_person)),
        )
        .where(Conversation.id == conversation_id)
        .order_by(Message.id)
    )
    before_pending = (
        select(Message.author, Message.meta)
        .where(Message.conversation_id == conversation_id, Message.id < bindparam("first_pending", type_=Message.id.type))
        .order_by(Message.id.desc())
        .limit(OFFER_LOOKBACK)
    )
    return header_and_messages, before_pending


def load_turn(session: Session, conversation_id: str) -> TurnInputs | None:
    """The conversation with its channel and agent, the messages the turn answers, and the
    choices still standing before them (:func:`~.choices.standing_offer`).

    None when the conversation is gone or handed off (the inbox has its messages).
    """
    header_and_messages, before_pending = _turn_statements()
    parameters = {"conversation_id": conversation_id}
    rows = session.execute(header_and_messages, parameters).all()
    if not rows or rows[0][0].status != "bot":
        return None
    conversation, channel, agent, _ = rows[0]
    messages = [row[3] for row in rows if row[3] is not None]
    pending = [m for m in messages if m.author == "customer" and m.turn_id is None]
    context = [m for m in messages if not (m.author == "customer" and m.turn_id is None)]
    offered: list[dict[str, str]] = []
    if pending:
        recent = session.execute(before_pending, {**parameters, "first_pending": pending[0].id}).tuples()
        offered = standing_offer(recent)
    return TurnInputs(conversation, channel, agent, pending, context, offered)
