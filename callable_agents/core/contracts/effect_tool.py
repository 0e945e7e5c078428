"""Building a tool that answers with effects: a LangChain tool returning a LangGraph ``Command``.

Kept apart from the contract (:func:`callable_agents.core.contracts.tools.effect_tool`) so that
loading plugins does not import LangGraph: this module is imported when a tool is built.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.prebuilt import ToolRuntime
from langgraph.types import Command

from callable_agents.core.contracts.tools import EffectToolRun


def build_effect_tool(name: str, description: str, args_schema: dict[str, Any], run: EffectToolRun) -> BaseTool:
    async def call(runtime: ToolRuntime, **arguments: Any) -> Command[Any]:
        # The tools node injects ``runtime``: the graph state (the turn's effects so far) and the call's id.
        told, effects = run(arguments, list(runtime.state.get("effects") or []))
        message = ToolMessage(content=told, tool_call_id=runtime.tool_call_id or "", name=name)
        return Command(update={"effects": effects, "messages": [message]})

    return StructuredTool.from_function(coroutine=call, name=name, description=description, args_schema=args_schema)
