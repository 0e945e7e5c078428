"""A turn's result: what ``respond`` decided, once, and the turn code only persists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callable_agents.core.contracts.effects import Effect, HandOff

ANSWERING_OUTCOMES = ("answered", "offline")  # the outcomes whose replies cite their passages


@dataclass(frozen=True)
class TurnResult:
    """The reply parts shaped for the channel, the citations under the last part, the
    tools' effects in order, and the outcome (answered | no_answer | fallback | tool_limit |
    handed_off | offline)."""

    parts: list[str] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    outcome: str = ""

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
