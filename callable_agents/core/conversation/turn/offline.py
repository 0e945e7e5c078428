"""Offline mode (no chat model configured): extractive answers from the knowledge base.

A request a tool recognises through its type's ``offline_route`` (e.g. "can I talk to a
person?") becomes a call of that tool; anything else is answered with the best
matching sentences of the retrieved passages, labelled as offline, or an honest "I don't
know".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from callable_agents.core.conversation.turn.context import TurnDeps
from callable_agents.core.conversation.turn.prompt import latest_customer_text

OFFLINE_LABEL = "(offline mode: answered from the knowledge base)"
NO_ANSWER = "I don't know that, and I'd rather not guess. Would you like me to connect you with a person?"
OFFLINE_CALL_ID = "offline-route"

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOPWORDS = frozenset(
    "a an and are as at be but by can could do does did for from have has how i if in is it its me my of on or "
    "our please so that the their them there these this to us was we what when where which who why will with "
    "would you your yours hi hello hey thanks thank tell know about any".split()
)


def _content_words(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS and len(word) > 1}


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def extractive_answer(question: str, passages: Sequence[Mapping[str, Any]]) -> str | None:
    """The best-matching sentences of the best passage, or None when nothing is relevant."""
    wanted = {_stem(word) for word in _content_words(question)}
    if not wanted:
        return None
    best: tuple[float, str] | None = None
    for passage in passages[:4]:
        sentences = re.split(r"(?<=[.!?])\s+|\n+", str(passage.get("text", "")))
        scored = []
        for position, sentence in enumerate(sentences):
            words = {_stem(word) for word in _content_words(sentence)}
            overlap = len(wanted & words)
            if overlap:
                scored.append((overlap, -position, sentence.strip()))
        if not scored:
            continue
        scored.sort(reverse=True)
        top = sorted(scored[:2], key=lambda item: -item[1])
        coverage = sum(item[0] for item in scored[:2]) / len(wanted)
        if best is None or coverage > best[0]:
            best = (coverage, " ".join(item[2] for item in top))
    if best is None or best[0] < 0.34:
        return None
    return best[1]


def offline_reply(messages: Sequence[BaseMessage], passages: Sequence[Mapping[str, Any]], deps: TurnDeps) -> AIMessage:
    """Call the tool whose offline route recognises the request, else answer extractively."""
    if messages and isinstance(messages[-1], ToolMessage):
        return AIMessage(content="")  # the tool's own effect (e.g. a notice to the customer) is the reply
    question = latest_customer_text(messages)
    for tool_name, route in deps.offline_routes.items():
        arguments = route(question)
        if arguments is not None:
            return AIMessage(content="", tool_calls=[{"name": tool_name, "args": arguments, "id": OFFLINE_CALL_ID}])
    answer = extractive_answer(question, passages)
    if answer is None:
        return AIMessage(content=NO_ANSWER, response_metadata={"outcome": "no_answer"})
    return AIMessage(content=f"{answer}\n\n_{OFFLINE_LABEL}_", response_metadata={"outcome": "offline"})
