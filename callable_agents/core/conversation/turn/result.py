"""A turn's result: what ``respond`` decided, once, and the turn code only persists."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from callable_agents.core.contracts.effects import Effect, HandOff

ANSWERING_OUTCOMES = ("answered", "offline")  # the outcomes whose replies cite their passages
TRACED_CHARS = 1000  # of a tool call's arguments or result, as the trace keeps them


@dataclass(frozen=True)
class TurnResult:
    """The reply parts shaped for the channel, the citations under the last part, the
    tools' effects in order, and the outcome (answered | no_answer | fallback | tool_limit |
    handed_off | offline).

    For the trace: ``model``, the chat model that wrote the last reply (the fallback model
    when the primary failed; empty when none answered); ``usage``, the prompt, completion
    and total tokens summed over the turn's model calls (as the provider reported them);
    ``tool_calls``, each call's name, the arguments the model gave and the tool's result,
    shortened to :data:`TRACED_CHARS` (a tool's configuration is never part of them)."""

    parts: list[str] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    outcome: str = ""
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    tool_calls: list[dict[str, str]] = field(default_factory=list)

    @property
    def hand_off(self) -> HandOff | None:
        """The turn's handoff (the first one asked for), if any."""
        return next((effect for effect in self.effects if isinstance(effect, HandOff)), None)


def distinct_effects(effects: list[Effect]) -> list[Effect]:
    """The effects in order without repeats, and one handoff: calls made in the same round
    run side by side, so a tool cannot see its twin's effect."""
    kept: list[Effect] = []
    for effect in effects:
        if effect in kept or (isinstance(effect, HandOff) and any(isinstance(k, HandOff) for k in kept)):
            continue
        kept.append(effect)
    return kept


def shorten(text: str, limit: int = TRACED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def content_text(content: Any) -> str:
    """A message's content as text (a string, or the text of its content blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(block.get("text", "")) if isinstance(block, dict) else str(block) for block in content)
    return str(content)


def tool_calls_of(messages: Sequence[BaseMessage], limit: int = TRACED_CHARS) -> list[dict[str, str]]:
    """The tool calls the AI messages in ``messages`` made, in order, each with its name,
    its arguments (JSON) and the result its tool message gave, shortened to ``limit``."""
    calls: dict[str, dict[str, str]] = {}
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                call_id = str(call.get("id") or len(calls))
                arguments = json.dumps(call.get("args") or {}, ensure_ascii=False, sort_keys=True)
                calls[call_id] = {"name": str(call["name"]), "arguments": shorten(arguments, limit), "result": ""}
        elif isinstance(message, ToolMessage) and message.tool_call_id in calls:
            calls[message.tool_call_id]["result"] = shorten(content_text(message.content), limit)
    return list(calls.values())


def add_usage(total: Mapping[str, int] | None, message: BaseMessage) -> dict[str, int]:
    """``total`` plus the tokens ``message`` (a model's reply) reports in ``usage_metadata``."""
    summed = {"prompt": 0, "completion": 0, "total": 0, **(total or {})}
    usage = getattr(message, "usage_metadata", None) or {}
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    summed["prompt"] += prompt
    summed["completion"] += completion
    summed["total"] += int(usage.get("total_tokens") or prompt + completion)
    return summed
