"""Offline mode (no chat model configured): extractive answers from the knowledge base.

A request a tool recognises through its type's ``offline_route`` (e.g. "can I talk to a
person?") becomes a call of that tool; anything else is answered with the best
matching sentences of the retrieved passages, labelled as offline, or an honest "I don't
know".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from callable_agents.core.conversation.turn.context import TurnDeps
from callable_agents.core.conversation.turn.prompt import latest_customer_text

OFFLINE_LABEL = "(offline mode: answered from the knowledge base)"
NO_ANSWER = "I don't know that, and I'd rather not guess. Would you like me to connect you with a person?"
NOT_FOUND = (
    "I couldn't find anything about {term} in what I know about us, so I'd rather not guess. "
    "Would you like me to connect you with a person?"
)
OFFLINE_CALL_ID = "offline-route"
MAX_ANSWER_CHARS = 600  # two sentences of a passage, well within every channel's message
MIN_COVERAGE = 0.33  # a passage must share a third of the question's words to answer it

_WORD = re.compile(r"[a-z0-9£$€]+(?:'[a-z]+)?")
_STOPWORDS = frozenset(
    "a an and are as at be but by can could do does did for from have has how i if in is it its me my of on or "
    "our please so that the their them there these this to us was we what when where which who why will with "
    "would you your yours hi hello hey thanks thank tell know about any get got much many".split()
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s+")
# A sentence ends at . ! or ? followed by a space and a capital, a digit or an opening mark.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(£$€])")
_COMPLETE = re.compile(r"^[A-Z0-9£$€\"“(].*[.!]$", re.S)
_CURRENCY = re.compile(r"[£$€]\s?\d")
_DIGIT = re.compile(r"\d")
_TOKEN = re.compile(r"[A-Za-z][\w'’-]*|[.!?]")


@dataclass(frozen=True)
class Extract:
    """What offline mode found for a question: an answer and the passage it quotes, or a
    term of the question that no passage mentions."""

    text: str | None = None
    passage: int | None = None
    missing: str | None = None


def _stem(word: str) -> str:
    """A light English stemmer, the same on both sides: ``handles``/``handle``, ``parking``/``park``."""
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) > len(suffix) + 3:
            return word[: -len(suffix)]
    return word


def _content_words(text: str) -> set[str]:
    return {_stem(word) for word in _WORD.findall(text.lower()) if word not in _STOPWORDS and len(word) > 1}


def _is_heading(line: str, rest: Sequence[str]) -> bool:
    """A passage's first line is its section heading when it reads as one: short, and not a
    sentence (no full stop), or a question with its answer below (an FAQ)."""
    words = line.split()
    if not words or len(words) > 12 or line.rstrip().endswith((".", "!", ":", ",", ";")):
        return False
    return not line.rstrip().endswith("?") or any(other.strip() for other in rest)


def answer_units(text: str) -> list[tuple[str, str]]:
    """A passage's text as (heading, unit) pairs: whole sentences and list items.

    Knowledge text is often hard-wrapped: the lines of a paragraph are joined before it is
    cut into sentences, so an answer never stops at a line break mid-sentence. A list item
    stays one unit; a heading (Markdown's, or the passage's first line) is kept as the
    context of the units under it. A fragment (a passage that starts or ends mid-sentence)
    and a question are not units: an answer is made of whole statements.
    """
    lines = text.splitlines()
    heading = ""
    if lines and not _HEADING.match(lines[0]) and _is_heading(lines[0], lines[1:]):
        heading, lines = lines[0].strip(), lines[1:]
    units: list[tuple[str, str]] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            joined = " ".join(line.strip() for line in paragraph)
            for sentence in _SENTENCE_END.split(joined):
                sentence = sentence.strip()
                if _COMPLETE.match(sentence) and not sentence.endswith("?"):
                    units.append((heading, sentence))
            paragraph.clear()

    for line in lines:
        if not line.strip():
            flush()
        elif _HEADING.match(line):
            flush()
            heading = _HEADING.sub("", line).strip()
        elif _LIST_ITEM.match(line):
            flush()
            item = _LIST_ITEM.sub("", line).strip()
            if item:
                units.append((heading, item))
        else:
            paragraph.append(line)
    flush()
    return units


def _as_sentence(heading: str, unit: str) -> str:
    """A unit written as a complete sentence: a list item gets its heading and a full stop."""
    if unit.endswith((".", "!", "?")):
        return unit
    return f"{heading}: {unit}." if heading else f"{unit[:1].upper()}{unit[1:]}."


def _wants_a_number(question: str) -> tuple[bool, bool]:
    """(asks for a price, asks for a number: a time, a duration, a count)."""
    lowered = question.lower()
    price = bool(re.search(r"\b(how much|cost|price|fee|charge)", lowered))
    number = price or bool(re.search(r"\b(how (long|many|far|soon|old)|when|what time|until|notice)\b", lowered))
    return price, number


def _missing_named_term(question: str, passages: Sequence[Mapping[str, Any]]) -> str | None:
    """A name in the question (a capitalised word not opening a sentence: a place, a product)
    that none of the passages mention."""
    known = " ".join(f"{passage.get('text', '')} {passage.get('title', '')}" for passage in passages).lower()
    known_words = _content_words(known)
    opens_sentence = True
    for token in _TOKEN.findall(question):
        if token in ".!?":
            opens_sentence = True
            continue
        word = token.lower()
        if not opens_sentence and token[0].isupper() and word not in _STOPWORDS:
            if word not in known and _stem(word) not in known_words:
                return token
        opens_sentence = False
    return None


_BUSINESS_SENTENCES = (
    ("address", "Our address is {}."),
    ("hours", "Our opening hours are {}."),
    ("phone", "Our phone number is {}."),
    ("email", "Our email address is {}."),
    ("website", "Our website is {}."),
)


def business_passage(info: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's business info as one more passage to answer from (it cites nothing)."""
    lines = [template.format(info[key]) for key, template in _BUSINESS_SENTENCES if info.get(key)]
    lines.extend(str(fact).strip() for fact in info.get("facts") or [] if isinstance(fact, str) and fact.strip())
    return {"title": "", "text": "\n".join(f"- {line}" for line in lines), "business": True}


def extract_answer(question: str, passages: Sequence[Mapping[str, Any]], business: Mapping[str, Any] | None = None) -> Extract:
    """The best one or two consecutive whole sentences of one passage for ``question``.

    First the passage (the one that shares most of the question's words, retrieval's order
    breaking ties), then its sentences (the ones with the question's words that are rare in
    that passage, and a price or a number when the question asks for one). Nothing
    (``Extract()``) when no passage is about the question; ``missing`` when the question
    names something the knowledge base does not mention (a town not delivered to, a product
    not sold), so the agent says so instead of answering a nearby question.
    """
    wanted = _content_words(question)
    if re.search(r"\bwhat time\b", question.lower()):
        wanted.discard("time")  # the question's form, not its topic
    if not wanted:
        return Extract()
    pool = list(passages[:4])
    if business:
        pool.append(business_passage(business))
    missing = _missing_named_term(question, pool)
    if missing is not None:
        return Extract(missing=missing)
    candidates = [answer_units(str(passage.get("text", ""))) for passage in pool]
    chosen: tuple[float, int] | None = None
    for index, (passage, units) in enumerate(zip(pool, candidates, strict=True)):
        if not units:
            continue
        words = _content_words(str(passage.get("title", ""))).union(*(_content_words(f"{h} {u}") for h, u in units))
        covered = len(wanted & words) / len(wanted)
        if passage.get("business"):
            # The business's own facts win only where one of them says all the question asks.
            score = covered + (0.2 if any(wanted <= _content_words(unit) for _, unit in units) else 0.0)
        else:
            score = covered + 0.15 * (len(pool) - index) / len(pool)  # retrieval's order breaks ties
        if covered >= MIN_COVERAGE and (chosen is None or score > chosen[0]):
            chosen = (score, index)
    if chosen is None:
        return Extract()
    index = chosen[1]
    units = candidates[index]
    unit_words = [_content_words(unit) for _, unit in units]
    heading_words = [_content_words(heading) for heading, _ in units]
    # A word most of the passage's sentences share ("cake" on the cake page) says little.
    weight = {word: 1.0 / (1.0 + sum(word in words for words in unit_words)) ** 0.5 for word in wanted}
    price, number = _wants_a_number(question)
    best: tuple[float, int] | None = None
    for position, (heading, unit) in enumerate(units):
        words = unit_words[position]
        score = sum(weight[word] for word in wanted & words)
        # A heading that names the question's topic points at the sentence that opens its section.
        opens_section = position == 0 or units[position - 1][0] != heading
        score += (1.0 if opens_section else 0.25) * sum(weight[word] for word in wanted & (heading_words[position] - words))
        if not score:
            continue
        if price and _CURRENCY.search(unit):
            score += 0.5
        elif number and _DIGIT.search(unit):
            score += 0.3
        if best is None or score > best[0]:
            best = (score, position)
    if best is None:
        return Extract()
    first = last = best[1]
    if first + 1 < len(units) and units[first + 1][0] == units[first][0] and wanted & unit_words[first + 1]:
        last = first + 1  # the next sentence of the section goes on about it
    text = " ".join(_as_sentence(*units[position]) for position in range(first, last + 1))
    if len(text) > MAX_ANSWER_CHARS:
        text = _as_sentence(*units[first])
    return Extract(text=text, passage=None if pool[index].get("business") else index)


def offline_reply(messages: Sequence[BaseMessage], passages: Sequence[Mapping[str, Any]], deps: TurnDeps) -> AIMessage:
    """Call the tool whose offline route recognises the request, else answer extractively."""
    if messages and isinstance(messages[-1], ToolMessage):
        return AIMessage(content="")  # the tool's own effect (e.g. a notice to the customer) is the reply
    question = latest_customer_text(messages)
    for tool_name, route in deps.offline_routes.items():
        arguments = route(question)
        if arguments is not None:
            return AIMessage(content="", tool_calls=[{"name": tool_name, "args": arguments, "id": OFFLINE_CALL_ID}])
    found = extract_answer(question, passages, getattr(deps.agent, "business_info", None) or {})
    if found.missing is not None:
        return AIMessage(content=NOT_FOUND.format(term=found.missing), response_metadata={"outcome": "no_answer"})
    if found.text is None:
        return AIMessage(content=NO_ANSWER, response_metadata={"outcome": "no_answer"})
    return AIMessage(
        content=f"{found.text}\n\n_{OFFLINE_LABEL}_",
        response_metadata={"outcome": "offline", "cited": [] if found.passage is None else [found.passage]},
    )
