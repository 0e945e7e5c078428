"""A typed answer to offered choices: which choice a customer's "2" or "Delivery" means.

An ``OfferChoices`` effect reaches every channel without buttons as numbered text (and a
channel with buttons too when its provider can't make them), so the customer answers by
typing a number or a choice's title. The turn resolves such an answer against the choices
the agent's latest messages offered (``Message.meta["choices"]``) and describes it for the
model as a channel describes a tap
(:func:`~callable_agents.core.contracts.effects.describe_pick`): the model, and offline
mode, need not work out what "2" meant. Anything else passes through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from callable_agents.core.contracts.effects import describe_pick

OFFER_LOOKBACK = 8  # the newest messages before the customer's answer in which an offer stands

# "2", "2.", "2)", "#2", "no. 2", "nr 2", "number 2", "option 2", "choice 2"; spaces around.
_NUMBER_ANSWER = re.compile(r"^\s*(?:(?:no|nr|num|number|option|choice)\s*\.?\s*|#\s*)?(\d{1,3})\s*[.)]?\s*$", re.I)


def offered_choices(meta: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The choices a stored message offered (``meta["choices"]["options"]``), the
    well-formed ones (an id and a title, as text), in order; empty when it offered none."""
    offer = (meta or {}).get("choices")
    if not isinstance(offer, Mapping):
        return []
    options = offer.get("options")
    if not isinstance(options, list):
        return []
    return [
        {"id": option["id"], "title": option["title"]}
        for option in options
        if isinstance(option, Mapping) and isinstance(option.get("id"), str) and isinstance(option.get("title"), str)
        and option["title"].strip()
    ]


def standing_offer(newest_first: Iterable[tuple[str, Mapping[str, Any] | None]]) -> list[dict[str, str]]:
    """The choices still awaiting an answer, from the messages before the customer's new
    ones as (author, meta), newest first: the latest offer among the agent's messages since
    the customer last wrote (a turn may send an item after its offer). A message from anyone
    else (the customer, a person, a notice) ends the search: the offer was answered, or
    someone has spoken since, and "2" is left to the model."""
    for author, meta in newest_first:
        if author != "agent":
            return []
        choices = offered_choices(meta)
        if choices:
            return choices
    return []


def _same_words(text: str) -> str:
    return " ".join(text.split()).casefold()


def picked_choice(text: str, choices: Sequence[Mapping[str, str]]) -> Mapping[str, str] | None:
    """The choice ``text`` picks: a bare number in range (``2``, ``2.``, ``#2``, ``option 2``)
    or exactly one choice's title (case and spacing aside). None otherwise, and when the two
    readings disagree (titles that are numbers themselves: "2" may be either)."""
    if not choices or not text.strip():
        return None
    by_title = next((choice for choice in choices if _same_words(choice["title"]) == _same_words(text)), None)
    number = _NUMBER_ANSWER.match(text)
    by_number = choices[int(number[1]) - 1] if number and 1 <= int(number[1]) <= len(choices) else None
    if by_title is not None and by_number is not None and by_title is not by_number:
        return None
    return by_title or by_number


def with_pick_described(text: str, choices: Sequence[Mapping[str, str]]) -> str:
    """``text`` as the model reads it: with the choice it picks described after it, or as it is."""
    choice = picked_choice(text, choices)
    return text if choice is None else describe_pick(text, choice)
