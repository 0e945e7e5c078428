"""Effects: what a tool asks the conversation to do besides answering the model.

A tool returns them in a LangGraph ``Command(update={"effects": [...], "messages": [...]})``;
they accumulate in the graph state for one turn (the list is emptied when the next turn
starts), ``respond`` puts them in the turn's result, and the turn code applies them after
the run, in order, through the same durable paths as replies. Core knows these three kinds
and no tool by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class SendItem:
    """Deliver ``text`` (and ``media``: ``[{"url", "content_type"}]``) as its own message, word for word."""

    name: ClassVar[str] = "send_item"  # how stored messages and traces name it

    text: str
    media: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class HandOff:
    """Pass the conversation to a person: the agent stays silent, the customer gets ``customer_message``."""

    name: ClassVar[str] = "hand_off"

    reason: str
    customer_message: str = ""  # empty: core's default notice


@dataclass(frozen=True)
class QueueJob:
    """Run a plugin's own durable job (a kind it registered with ``register_job_kinds``) after the turn.

    The job is committed with the turn's result, so it runs exactly when the turn counted.
    """

    name: ClassVar[str] = "queue_job"

    kind: str
    payload: dict[str, Any]
    lane: str | None = None  # jobs of one lane run one at a time, in order


Effect = SendItem | HandOff | QueueJob

EFFECT_TYPES: tuple[type, ...] = (SendItem, HandOff, QueueJob)


def add_effects(current: list[Effect] | None, new: list[Effect] | None) -> list[Effect]:
    """The graph state's reducer for ``effects``: appended in the order the tools asked."""
    return [*(current or []), *(new or [])]
