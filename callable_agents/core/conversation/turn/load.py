"""What a turn reads before it runs, in one read: the conversation, its channel and agent,
the customer's unanswered messages, a person's replies since the last turn, and the choices
the agent offered before those messages (what a typed "2" picks, :mod:`.choices`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

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
def _turn_statements() -> tuple[Any, Any, Any]:
    """The reads of :func:`load_turn`, built once (building costs more than running them)."""
    conversation_id = bindparam("conversation_id", type_=Message.conversation_id.type)
    header = (
        select(Conversation, Channel, Agent)
        .join(Channel, Channel.id == Conversation.channel_id)
        .join(Agent, Agent.id == Channel.agent_id)
        .where(Conversation.id == conversation_id)
    )
    last_turn_message = (
        select(func.max(Message.id))
        .where(Message.conversation_id == conversation_id, Message.turn_id > 0)
        .scalar_subquery()
    )
    unanswered = and_(Message.author == "customer", Message.turn_id.is_(None))
    from_a_person = and_(
        Message.id > func.coalesce(last_turn_message, 0),
        or_(Message.author == "human", and_(Message.author == "customer", Message.turn_id == HANDLED_BY_PERSON)),
    )
    messages = (
        select(Message)
        .where(Message.conversation_id == conversation_id, or_(unanswered, from_a_person))
        .order_by(Message.id)
    )
    before_pending = (
        select(Message.author, Message.meta)
        .where(Message.conversation_id == conversation_id, Message.id < bindparam("first_pending", type_=Message.id.type))
        .order_by(Message.id.desc())
        .limit(OFFER_LOOKBACK)
    )
    return header, messages, before_pending


def load_turn(session: Session, conversation_id: str) -> TurnInputs | None:
    """The conversation with its channel and agent, the messages the turn answers, and the
    choices still standing before them (:func:`~.choices.standing_offer`).

    None when the conversation is gone or handed off (the inbox has its messages).
    """
    header, messages_statement, before_pending = _turn_statements()
    parameters = {"conversation_id": conversation_id}
    row = session.execute(header, parameters).first()
    if row is None or row[0].status != "bot":
        return None
    conversation, channel, agent = row
    messages = session.scalars(messages_statement, parameters).all()
    pending = [m for m in messages if m.author == "customer" and m.turn_id is None]
    context = [m for m in messages if not (m.author == "customer" and m.turn_id is None)]
    offered: list[dict[str, str]] = []
    if pending:
        recent = session.execute(before_pending, {**parameters, "first_pending": pending[0].id}).tuples()
        offered = standing_offer(recent)
    return TurnInputs(conversation, channel, agent, pending, context, offered)
