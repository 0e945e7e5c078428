"""The tool contract: tool types an agent can be given, and what their factories receive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from callable_agents.core.runtime import Runtime


@dataclass
class ToolContext:
    """What a tool factory gets for one agent and one turn.

    ``effects`` collects what a tool asks the pipeline to do besides answering the model
    (send an item as its own message, hand off): the pipeline applies them after the turn,
    in order, through the same durable paths as replies.
    """

    runtime: Runtime
    workspace_id: str
    agent_id: str
    tool_name: str
    config: BaseModel
    conversation_id: str | None = None
    channel_kind: str | None = None
    effects: list[dict[str, Any]] = field(default_factory=list)


ToolFactory = Callable[[ToolContext], "BaseTool"]


@dataclass(frozen=True)
class ToolType:
    name: str
    description: str
    config_schema: type[BaseModel]
    factory: ToolFactory
