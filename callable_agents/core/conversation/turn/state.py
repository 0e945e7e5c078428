"""The agent graph's state: what it checkpoints per conversation (the thread)."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

from callable_agents.core.contracts.effects import Effect, add_effects
from callable_agents.core.conversation.turn.result import TurnResult


class AgentState(TypedDict, total=False):
    """What the graph checkpoints per conversation."""

    messages: Annotated[list[AnyMessage], add_messages]
    passages: list[dict[str, Any]]  # retrieved for the current turn
    tool_rounds: int
    effects: Annotated[list[Effect], add_effects]  # what this turn's tools asked for, in order
    result: TurnResult  # this turn's result (respond)
    reply: list[str]  # the shaped parts of this turn's reply (= result.parts; shown by Studio)
    outcome: str  # answered | no_answer | fallback | tool_limit | handed_off | offline
    model: str  # the chat model that answered this turn's latest call (the fallback one if the primary failed)
    usage: dict[str, int]  # prompt/completion/total tokens of this turn's model calls, summed
