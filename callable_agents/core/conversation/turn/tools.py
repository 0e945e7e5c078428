"""The graph's ``tools`` node: the model's tool calls run through LangGraph's ``ToolNode``.

The agent's tools are built per turn (:mod:`.deps`), so one ``ToolNode`` without tools of its
own runs them, handed each call's tool by a wrapper that also keeps our rules:

* a round beyond the agent's ``max_tool_rounds`` runs nothing (every call is answered, so
  the history stays valid) and the turn falls back;
* a call of an unknown tool is answered with the tools there are;
* a tool bug must not break the conversation: the model is told the tool failed.

A tool answers with text (a ``ToolMessage``) or a ``Command`` whose update carries its
effects (:mod:`callable_agents.core.contracts.effects`) beside its ``ToolMessage``.
:func:`call_tool` runs one tool the same way outside a graph (tests, the test kit).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.config import get_config
from langgraph.prebuilt import ToolNode, ToolRuntime
from langgraph.prebuilt.tool_node import ToolCallRequest, ToolInvocationError
from langgraph.runtime import Runtime
from langgraph.types import Command

from callable_agents.core.contracts.effects import Effect
from callable_agents.core.conversation.turn.context import AgentContext, deps_of
from callable_agents.core.conversation.turn.state import AgentState
from callable_agents.core.observability.pipeline import count_unknown_tool, observed_tool

log = logging.getLogger(__name__)

DEFAULT_MAX_TOOL_ROUNDS = 4
ROUND_LIMIT_REACHED = "Not run: the tool-round limit was reached."

Execute = Callable[[ToolCallRequest], Awaitable["ToolMessage | Command[Any]"]]


def max_tool_rounds(agent: Any) -> int:
    settings = getattr(agent, "model_settings", None) or {}
    value = settings.get("max_tool_rounds", DEFAULT_MAX_TOOL_ROUNDS)
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_TOOL_ROUNDS


def _failure_message(exc: Exception) -> str:
    cause = exc.__cause__ if isinstance(exc, ToolInvocationError) and isinstance(exc.__cause__, Exception) else exc
    return f"The tool failed ({type(cause).__name__}). Tell the customer you couldn't complete it."


def _runner(tools: Sequence[BaseTool]) -> Callable[[ToolCallRequest, Execute], Awaitable["ToolMessage | Command[Any]"]]:
    by_name = {tool.name: tool for tool in tools}

    async def run(request: ToolCallRequest, execute: Execute) -> ToolMessage | Command[Any]:
        call = request.tool_call
        tool = by_name.get(call["name"])
        if tool is None:
            count_unknown_tool()
            content = f"Unknown tool {call['name']!r}; available: {', '.join(by_name) or 'none'}."
            return ToolMessage(content=content, tool_call_id=call["id"], name=call["name"])
        try:
            return await observed_tool(tool.name, call["id"] or "", call["args"], execute(request.override(tool=tool)))
        except Exception as exc:  # a tool bug must not break the conversation
            log.exception("tool %s failed", call["name"])
            return ToolMessage(content=_failure_message(exc), tool_call_id=call["id"], name=call["name"])

    return run


async def tools(state: AgentState, runtime: Runtime[AgentContext]) -> list[Command[Any]]:
    """Run the last message's tool calls (one round); their messages and effects go into the state."""
    deps = await deps_of(runtime)
    last = state["messages"][-1]
    assert isinstance(last, AIMessage)
    rounds = state.get("tool_rounds", 0) + 1
    if rounds > max_tool_rounds(deps.agent):
        results = [ToolMessage(content=ROUND_LIMIT_REACHED, tool_call_id=call["id"], name=call["name"]) for call in last.tool_calls]
        return [Command(update={"messages": results, "tool_rounds": rounds, "outcome": "tool_limit"})]
    node = ToolNode([], awrap_tool_call=_runner(deps.tools), handle_tool_errors=False)
    outputs = await node.ainvoke(state, get_config())
    # A dict when no tool answered with a Command, else a list of Commands and dicts.
    updates = outputs if isinstance(outputs, list) else [outputs]
    commands = [update if isinstance(update, Command) else Command(update=update) for update in updates]
    return [*commands, Command(update={"tool_rounds": rounds})]


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call answered the model and the effects it asked for."""

    text: str
    effects: list[Effect] = field(default_factory=list)


async def call_tool(
    tool: BaseTool, arguments: dict[str, Any], *, effects: Sequence[Effect] = (), call_id: str = "call-1"
) -> ToolOutcome:
    """Call ``tool`` as the tools node would, in a turn whose effects so far are ``effects``."""
    tool_runtime = ToolRuntime(
        state={"effects": list(effects), "messages": []},
        context=None,
        config={},
        stream_writer=lambda _chunk: None,
        tool_call_id=call_id,
        store=None,
    )
    runtime_argument = _runtime_argument(tool)
    injected = {**arguments, runtime_argument: tool_runtime} if runtime_argument else arguments
    output = await tool.ainvoke({"type": "tool_call", "name": tool.name, "args": injected, "id": call_id})
    if isinstance(output, Command):
        update = output.update if isinstance(output.update, dict) else {}
        messages = update.get("messages") or []
        text = next((str(m.content) for m in messages if isinstance(m, ToolMessage)), "")
        return ToolOutcome(text, list(update.get("effects") or []))
    if isinstance(output, ToolMessage):
        return ToolOutcome(str(output.content))
    return ToolOutcome(str(output))


def _runtime_argument(tool: BaseTool) -> str | None:
    """The name of the tool's injected ``ToolRuntime`` argument, if it takes one (as the tools node finds it)."""
    from langgraph.prebuilt.tool_node import _get_all_injected_args

    return _get_all_injected_args(tool).runtime
