"""The tool contract: tool types an agent can be given, and what their factories receive.

A tool that asks the conversation to do something besides answering the model (send an
item as its own message, hand off, queue a job) returns a LangGraph ``Command`` whose
update carries :mod:`.effects` and its ``ToolMessage``; it sees the turn's effects so far
through an injected ``ToolRuntime`` (``runtime.state["effects"]``). :func:`effect_tool`
builds one from a plain function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from callable_agents.core.contracts.effects import Effect
    from callable_agents.core.runtime import Runtime


@dataclass
class ToolContext:
    """What a tool factory gets for one agent and one turn."""

    runtime: Runtime
    workspace_id: str
    agent_id: str
    tool_name: str
    config: BaseModel
    conversation_id: str | None = None
    channel_kind: str | None = None
    business_info: Mapping[str, Any] = field(default_factory=dict)  # the agent's (name, address, ...)


ToolFactory = Callable[[ToolContext], "BaseTool"]
# The customer's words -> the tool's arguments when offline mode should call it, else None.
OfflineRoute = Callable[[str], "dict[str, Any] | None"]


@dataclass(frozen=True)
class ToolType:
    name: str
    description: str
    config_schema: type[BaseModel]
    factory: ToolFactory
    # Offline mode (no chat model) calls the tool when this recognises the request (e.g. the
    # handoff tool: "can I talk to a person?"); None: offline mode never calls it.
    offline_route: OfflineRoute | None = None


# (the model's arguments, the turn's effects so far) -> (what the model is told, new effects)
EffectToolRun = Callable[[dict[str, Any], Sequence["Effect"]], "tuple[str, list[Effect]]"]


def effect_tool(*, name: str, description: str, args_schema: dict[str, Any], run: EffectToolRun) -> BaseTool:
    """A LangChain tool (``args_schema``: a JSON schema) whose ``run`` answers the model and
    asks for effects; it returns the ``Command`` the tools node applies."""
    from callable_agents.core.contracts.effect_tool import build_effect_tool

    return build_effect_tool(name, description, args_schema, run)
