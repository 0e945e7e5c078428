"""Effects: what a tool asks the conversation to do besides answering the model.

A tool returns them in a LangGraph ``Command(update={"effects": [...], "messages": [...]})``;
they accumulate in the graph state for one turn (the list is emptied when the next turn
starts), ``respond`` puts them in the turn's result, and the turn code applies them after
the run, in order, through the same durable paths as replies. Core knows these kinds and no
tool by name.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal


@dataclass(frozen=True)
class SendItem:
    """Deliver ``text`` (and ``media``: ``[{"url", "content_type"}]``) as its own message, word for word."""

    name: ClassVar[str] = "send_item"  # how stored messages and traces name it

    text: str
    media: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SendLocation:
    """Deliver a place (the business's location) as its own message.

    A channel whose capabilities include ``locations`` sends it natively (a map pin);
    every other channel gets :meth:`as_text`: the name, the address and a map link.
    """

    name: ClassVar[str] = "location"

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
class OfferChoices:
    """Ask the customer to pick one of a few ``choices`` (``[{"id", "title"}]``), after ``text``.

    A channel whose capabilities include ``choices`` shows them as buttons or a list
    (``OutboundMessage.choices``); every other channel gets :meth:`as_text`, the choices
    numbered. The customer's pick comes back as their next message: a channel that knows
    which choice was tapped describes it with :func:`describe_pick`; a bare number or a
    choice's title typed in answer is resolved by the turn, which describes it the same way.
    """

    name: ClassVar[str] = "choices"

    text: str
    choices: list[dict[str, str]]

    def as_text(self) -> str:
        """The question with the choices numbered, for a channel without buttons."""
        lines = [f"{number}. {choice['title']}" for number, choice in enumerate(self.choices, start=1)]
        return "\n".join([self.text, *lines, "Reply with the number of your choice."])

    def as_meta(self) -> dict[str, Any]:
        """What the stored message keeps of it (``Message.meta["choices"]``)."""
        return {"text": self.text, "options": [dict(choice) for choice in self.choices]}


_PICK_DESCRIPTION = re.compile(
    r"\[The customer (?:tapped|picked) the choice (?P<title>'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\") \(id [^)\n]*\)\]"
)


def describe_pick(said: str, choice: Mapping[str, str], *, how: Literal["tapped", "picked"] = "picked") -> str:
    """A customer's answer to an :class:`OfferChoices` as the agent reads it: what they sent,
    then which choice it means, e.g. ``"2\\n[The customer picked the choice 'Delivery' (id choice-2)]"``.

    One wording for every way a choice is made (``tapped``: a channel's button or list;
    ``picked``: a number or a title typed in answer), so the model reads them alike and
    offline mode recognises them (:func:`picked_title`). The stored message keeps what the
    customer sent; channels that know of the tap store this text.
    """
    return f"{said.strip()}\n[The customer {how} the choice {choice['title']!r} (id {choice['id']})]"


def picked_title(text: str) -> str | None:
    """The title of the choice a message described by :func:`describe_pick` made, else None:
    the words to answer and to search the knowledge for, instead of a bare "2"."""
    found = _PICK_DESCRIPTION.search(text)
    if found is None:
        return None
    try:
        title = ast.literal_eval(found["title"])  # written by repr(): a plain string literal
    except (ValueError, SyntaxError):  # typed by a customer, not written by describe_pick
        return None
    return title if isinstance(title, str) else None


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


Effect = SendItem | SendLocation | OfferChoices | HandOff | QueueJob

EFFECT_TYPES: tuple[type, ...] = (SendItem, SendLocation, OfferChoices, HandOff, QueueJob)


def add_effects(current: list[Effect] | None, new: list[Effect] | None) -> list[Effect]:
    """The graph state's reducer for ``effects``: appended in the order the tools asked."""
    return [*(current or []), *(new or [])]
