"""The scripted model of ``bench/answers.py``: a diligent but simple chat model that knows
nothing of the bench's labels.

:func:`respond` is a :class:`~callable_agents.testing.FakeOpenAI` responder. It reads only the
chat request the agent sent (the messages the real prompt builder produced, with its
numbered knowledge passages, and the tools offered) and answers as a careful model that
cannot paraphrase would:

- the customer asks for a person and a tool hands the conversation to one: it calls that
  tool, with the arguments its schema requires; once the tool's result is back, a short
  sentence;
- else the passage that shares the most content words with the question (ties: the earlier
  one) gives the answer: its sentence that matches the question best, as a complete
  sentence, followed by the passage's number in brackets as the prompt asks (``[2]``);
- no passage shares a content word: a "couldn't find" sentence, no marker.

It never sees ``bench/answers.yaml``: what it gets right or wrong is the retrieval ranking
(is the right passage among those given, and the best matching?), the prompt's numbering
and the marker-to-citation handling, not a tuned answerer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callable_agents.testing.openai_server import ScriptedReply, ScriptedToolCall, last_user_message, message_text

NOT_FOUND_REPLY = "Sorry, I couldn't find that in what I know about us. Would you like me to connect you with a person?"
AFTER_HANDOFF_REPLY = "I've asked a person from the team to take over; they will reply here shortly."
HANDOFF_REASON = "The customer asked to speak to a person."

# How the prompt introduces the turn's passages, and numbers each one: "[2] Title (url)".
_PASSAGES_HEADING = "Knowledge passages for the latest message:"
_PASSAGE_START = re.compile(r"^\[(\d{1,2})\] (.*)$", re.M)
_ASKS_FOR_A_PERSON = re.compile(
    r"\b(?:speak|talk|chat)\s+(?:to|with)\s+(?:a|an|the|some|your)?\s*(?:person|human|someone|manager|staff)\b"
    r"|\bhuman\b|\breal person\b|\bmanager\b|\bmember of (?:the )?staff\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9£$€]+(?:[.:][0-9]+)*")
_STOP_WORDS = frozenset(
    "a about all am an and any anything are as at be been but by can could did do does for from get give got "
    "had has have how i if in is it its just know let like me much many my no not of on or our please should "
    "so some tell than that the their them then there these they this to too us was we what when where which "
    "who why will with would you your hi hello hey thanks thank".split()
)
_SUFFIXES = ("ings", "ing", "ies", "ied", "es", "ed", "s")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(£$€])")


@dataclass(frozen=True)
class Passage:
    number: int
    title: str
    text: str


def _stem(word: str) -> str:
    """``deliveries``/``delivery``/``deliver``, ``closing``/``closed``/``close``: one form each."""
    word = word.removesuffix("'s").removesuffix("’s")
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word[-1] in "ey" else word


def content_words(text: str) -> set[str]:
    return {_stem(word) for word in _WORD.findall(text.lower().replace("’", "'")) if word not in _STOP_WORDS}


def passages_of(request: Mapping[str, Any]) -> list[Passage]:
    """The numbered passages of the request's last "Knowledge passages" system message."""
    for message in reversed(request.get("messages") or []):
        text = message_text(message)
        if message.get("role") in ("system", "developer") and text.startswith(_PASSAGES_HEADING):
            starts = list(_PASSAGE_START.finditer(text))
            ends = [start.start() for start in starts[1:]] + [len(text)] if starts else []
            return [
                Passage(int(start.group(1)), start.group(2), text[start.end() : end].strip())
                for start, end in zip(starts, ends, strict=True)
            ]
    return []


def is_heading(line: str, following: str, continues: bool) -> bool:
    """A Markdown heading, or a short line with no punctuation at its end that starts a block
    and is followed by a capitalised line or a list (the chunker keeps a section's heading as
    its first line, without the ``#``). ``continues``: the line would end an unfinished sentence."""
    if _HEADING.match(line):
        return True
    short = len(line.split()) <= 6 and not line.endswith((".", "!", "?", ",", ";", ":"))
    return short and not continues and (following[:1].isupper() or bool(_LIST_ITEM.match(following)))


def sentences_of(text: str) -> list[str]:
    """The passage's statements: hard-wrapped lines joined, a list item a unit of its own;
    headings and questions left out (they say what follows; they answer nothing)."""
    units: list[str] = []
    joinable = False
    in_item = False  # the last unit is a list item: only an indented line continues it
    lines = text.splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        item = _LIST_ITEM.match(stripped)
        following = lines[number + 1].strip() if number + 1 < len(lines) else ""
        continues = joinable and bool(units) and not units[-1].endswith((".", "!", "?", ":"))
        if not stripped or (not item and is_heading(stripped, following, continues)) or stripped.endswith("?"):
            joinable = False
            continue
        if item or not joinable or (in_item and not line[:1].isspace()):
            units.append(stripped[item.end() :] if item else stripped)
            joinable, in_item = True, bool(item)
        else:
            units[-1] += " " + stripped
    sentences = [sentence for unit in units for sentence in _SENTENCE_END.split(unit)]
    return [sentence for sentence in sentences if sentence.strip() and not sentence.rstrip().endswith("?")]


def as_sentence(text: str) -> str:
    """Capitalised and ending as a sentence does."""
    text = text.strip().rstrip(",;:")
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def answer(question: str, passages: Sequence[Passage]) -> str:
    """The best passage's best sentence and its marker, or "couldn't find"."""
    asked = content_words(question)
    best: tuple[int, Passage] | None = None
    for passage in passages:
        shared = len(asked & content_words(f"{passage.title}\n{passage.text}"))
        if shared and (best is None or shared > best[0]):
            best = (shared, passage)
    if best is None:
        return NOT_FOUND_REPLY
    passage = best[1]
    sentences = sentences_of(passage.text) or [passage.title]
    sentence = max(sentences, key=lambda s: (len(asked & content_words(s)), -sentences.index(s)))
    return f"{as_sentence(sentence)} [{passage.number}]"


def _handoff_tool(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The offered tool that hands the conversation to a person, read from its description."""
    for tool in request.get("tools") or []:
        function = tool.get("function") or {}
        described = f"{function.get('name', '')} {function.get('description', '')}".lower()
        if "person" in described or "human" in described or "hand off" in described:
            return function
    return None


def _arguments_for(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A value for each required argument of a tool's JSON schema."""
    values: dict[str, Any] = {}
    properties = schema.get("properties") or {}
    for name in schema.get("required") or []:
        kind = (properties.get(name) or {}).get("type", "string")
        values[name] = {"string": HANDOFF_REASON, "boolean": True, "integer": 1, "number": 1}.get(kind, HANDOFF_REASON)
    return values


def respond(request: Mapping[str, Any]) -> str | ScriptedReply:
    """The model's reply to one chat completion request."""
    spoken = [m for m in request.get("messages") or [] if m.get("role") not in ("system", "developer")]
    if spoken and spoken[-1].get("role") == "tool":
        return AFTER_HANDOFF_REPLY
    question = last_user_message(request)
    tool = _handoff_tool(request)
    if tool is not None and _ASKS_FOR_A_PERSON.search(question):
        return ScriptedReply(
            tool_calls=(ScriptedToolCall(name=str(tool["name"]), arguments=_arguments_for(tool.get("parameters") or {})),)
        )
    return answer(question, passages_of(request))
