"""The agent: a LangGraph ``StateGraph`` with nodes ``retrieve → reason ⇄ tools → respond``.

Its dependencies come in the run context (:mod:`.context`). The tools' effects accumulate in
the state (``effects``, emptied when a turn starts), and ``respond`` returns the turn's one
:class:`~.result.TurnResult` (``result``): parts shaped for the channel, citations, effects
and outcome, each decided here once.

State is bounded: ``respond`` removes messages beyond :data:`HISTORY_MESSAGES` so a
conversation's checkpoint does not grow with its length, and the prompt is trimmed to a
token budget (:mod:`.prompt`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, RemoveMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from callable_agents.core.contracts.effects import HandOff
from callable_agents.core.conversation.turn.context import AgentContext, TurnDeps, deps_of
from callable_agents.core.conversation.turn.offline import offline_reply
from callable_agents.core.conversation.turn.prompt import build_prompt, latest_customer_text, text_of
from callable_agents.core.conversation.turn.citing import citations_of, take_markers
from callable_agents.core.conversation.turn.result import (
    ANSWERING_OUTCOMES,
    TurnResult,
    add_usage,
    distinct_effects,
    tool_calls_of,
)
from callable_agents.core.conversation.turn.state import AgentState
from callable_agents.core.conversation.turn.tools import tools
from callable_agents.core.observability.pipeline import model_name, observed_chat, observed_retrieval
from callable_agents.core.reply import shape_reply

log = logging.getLogger(__name__)

HISTORY_MESSAGES = 24  # messages kept in the checkpointed state
DEFAULT_FALLBACK = "Sorry, I can't answer that right now. Please try again in a moment, or ask to talk to a person."

__all__ = ["AgentContext", "AgentState", "HISTORY_MESSAGES", "TurnDeps", "build_graph"]


def _fallback_message(agent: Any) -> str:
    return (getattr(agent, "fallback_message", "") or "").strip() or DEFAULT_FALLBACK


def left_by_unstored_run(messages: Sequence[BaseMessage], input_ids: frozenset[str]) -> list[BaseMessage]:
    """What a run that stored nothing left in the checkpoint after this run's inputs.

    The checkpoint is written when the graph ends, before the turn stores its result. A run
    killed in between, or superseded by a newer message (:mod:`.superseding`), leaves its
    reply (and tool calls) there, and the inputs given again replace themselves in place
    (same ids) before that reply: the rerun would see its question as answered already. The
    customer's messages are stored as unanswered, so anything after the first of them that
    is not an input of this run was never delivered.
    """
    if not input_ids:
        return []
    first = next((index for index, message in enumerate(messages) if message.id in input_ids), None)
    if first is None:
        return []
    return [message for message in messages[first:] if message.id not in input_ids]


async def retrieve(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    deps = await deps_of(runtime)
    messages = state.get("messages") or []
    stale = left_by_unstored_run(messages, runtime.context.input_ids if runtime.context else frozenset())
    if stale:
        log.info("dropping %d message(s) a run that stored nothing left in the checkpoint", len(stale))
        dropped = {id(message) for message in stale}
        messages = [message for message in messages if id(message) not in dropped]
    query = latest_customer_text(messages)
    passages: list[dict[str, Any]] = []
    if deps.search is not None and query:
        for found in await observed_retrieval(deps.search, query):
            citation = found.citation() if hasattr(found, "citation") else {}
            passages.append({**citation, "text": found.text, "score": float(found.score)})
    return {
        "messages": [RemoveMessage(id=message.id) for message in stale if message.id],
        "passages": passages, "tool_rounds": 0, "effects": Overwrite([]), "reply": [], "outcome": "",
        "model": "", "usage": {},
    }


async def reason(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    deps = await deps_of(runtime)
    messages = state.get("messages") or []
    passages = state.get("passages") or []
    if not deps.models:
        return {"messages": [offline_reply(messages, passages, deps)]}
    prompt = build_prompt(messages, passages, deps)
    for model in deps.models:  # the primary, then the fallback model
        runnable = model.bind_tools(list(deps.tools)) if deps.tools else model
        try:
            message = await observed_chat(model, deps.agent.name, lambda: runnable.ainvoke(prompt), prompt)
            return {"messages": [message], "model": model_name(model), "usage": add_usage(state.get("usage"), message)}
        except Exception as exc:  # provider error or timeout: try the next, then the fallback message
            log.warning("chat model %s failed: %s", getattr(model, "model_name", "?"), type(exc).__name__)
    return {
        "messages": [AIMessage(content=_fallback_message(deps.agent), response_metadata={"outcome": "fallback"})],
        "outcome": "fallback",
    }


def after_reason(state: AgentState, runtime: Runtime[AgentContext]) -> Literal["tools", "respond"]:
    messages = state.get("messages") or []
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and last.tool_calls:
        return "tools"
    return "respond"


def after_tools(state: AgentState, runtime: Runtime[AgentContext]) -> Literal["reason", "respond"]:
    return "respond" if state.get("outcome") == "tool_limit" else "reason"


async def respond(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    deps = await deps_of(runtime)
    messages = list(state.get("messages") or [])
    last = messages[-1] if messages else None
    outcome = state.get("outcome") or ""
    updates: list[AnyMessage] = []
    if outcome == "tool_limit" or not isinstance(last, AIMessage):
        text = _fallback_message(deps.agent)
        outcome = outcome or "fallback"
        fallback_message = AIMessage(content=text, response_metadata={"outcome": outcome})
        updates.append(fallback_message)
        messages.append(fallback_message)
    else:
        text = text_of(last)
        outcome = outcome or str(last.response_metadata.get("outcome") or "answered")
    passages = state.get("passages") or []
    cited: list[int] = []
    if outcome == "offline" and isinstance(last, AIMessage):
        cited = [int(index) for index in last.response_metadata.get("cited") or []]
    elif outcome == "answered":
        text, cited = take_markers(text, len(passages))
    effects = distinct_effects(list(state.get("effects") or []))
    if any(isinstance(effect, HandOff) for effect in effects):
        outcome = "handed_off"
        text = ""  # the turn sends the handoff notice; a model's paraphrase would repeat it
    citations = citations_of(passages, cited) if outcome in ANSWERING_OUTCOMES else []
    caps = deps.capabilities
    parts = (
        shape_reply(
            text,
            dialect=caps.formatting,
            max_length=caps.max_message_length,
            citations=citations,
            show_citations=caps.citations,
            length_unit=caps.length_unit,
        )
        if text.strip()
        else []
    )
    result = TurnResult(
        parts=parts, citations=citations, effects=effects, outcome=outcome,
        model=state.get("model") or "", usage=dict(state.get("usage") or {}), tool_calls=tool_calls_of(_this_run(messages)),
    )
    removals = [RemoveMessage(id=m.id) for m in _beyond_history(messages) if m.id]
    return {"messages": [*updates, *removals], "result": result, "reply": parts, "outcome": outcome}


def _this_run(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The messages after the customer's last one: this run's model replies and tool results
    (the run's inputs are added together before it reasons)."""
    last_human = max((index for index, message in enumerate(messages) if isinstance(message, HumanMessage)), default=-1)
    return list(messages[last_human + 1 :])


def _beyond_history(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The oldest messages to drop so at most HISTORY_MESSAGES stay, starting on a human turn."""
    if len(messages) <= HISTORY_MESSAGES:
        return []
    cut = len(messages) - HISTORY_MESSAGES
    while cut < len(messages) and not isinstance(messages[cut], HumanMessage):
        cut += 1  # never leave a tool result or an AI reply without what it answers
    return list(messages[:cut])


def build_graph() -> StateGraph[AgentState, AgentContext, Any, Any]:
    """The uncompiled graph; compile with a checkpointer for conversations, without for Studio."""
    graph: StateGraph[AgentState, AgentContext, Any, Any] = StateGraph(AgentState, context_schema=AgentContext)
    graph.add_node("retrieve", retrieve)
    graph.add_node("reason", reason)
    graph.add_node("tools", tools)
    graph.add_node("respond", respond)
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "reason")
    graph.add_conditional_edges("reason", after_reason, ["tools", "respond"])
    graph.add_conditional_edges("tools", after_tools, ["reason", "respond"])
    graph.add_edge("respond", END)
    return graph
