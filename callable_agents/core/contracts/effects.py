"""Effects: what a tool asks the conversation to do besides answering the model.

A tool returns them in a LangGraph ``Command(update={"effects": [...], "messages": [...]})``;
they accumulate in the graph state for one turn (the list is emptied when the next turn
starts), ``respond`` puts them in the turn's result, and the turn code applies them after
the run, in order, through the same durable paths as replies. Core knows these kinds and no
tool by name.
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
class SendLocation:
    """Deliver a place (the business's location) as its own message.

    A channel whose capabilities include ``locations`` sends it natively (a map pin on
    WhatsApp); every other channel gets :meth:`as_text`: the name, the address and a map link.
    """

    name: ClassVar[str] = "send_location"

    latitude: float
    longitude: float
    label: str = ""  # the place's name
    address: str = ""

    def map_url(self) -> str:
        return f"https://www.google.com/maps/search/?api=1&query={self.latitude:.6f},{self.longitude:.6f}"

    def as_text(self) -> str:
        """The place as a message any channel can show."""
        lines = [line for line in (self.label, self.address) if line]
        return "\n".join([*lines, self.map_url()])

    def as_meta(self) -> dict[str, Any]:
        """What the stored message keeps of it (``Message.meta["location"]``)."""
        return {"latitude": self.latitude, "longitude": self.longitude, "label": self.label, "address": self.address}


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


Effect = SendItem | SendLocation | HandOff | QueueJob

EFFECT_TYPES: tuple[type, ...] = (SendItem, SendLocation, HandOff, QueueJob)


def add_effects(current: list[Effect] | None, new: list[Effect] | None) -> list[Effect]:
    """The graph state's reducer for ``effects``: appended in the order the tools asked."""
    return [*(current or []), *(new or [])]
