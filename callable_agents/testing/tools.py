"""A plugin's tool built as the turn builds it, for calling it directly in a test.

:func:`build_test_tool` looks the tool type up in the runtime's plugins, validates ``config``
with the type's registered ``config_schema`` (a refused config raises pydantic's
``ValidationError`` naming the field) and calls the registered factory with a real
:class:`~callable_agents.plugin.ToolContext`. Call the result with ``await tool.ainvoke({...})``,
the arguments the model would send. To see the tool used by a model in a whole turn, use
:func:`~callable_agents.testing.turns.run_turn` with the fake OpenAI server instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from callable_agents.core.contracts.tools import ToolContext
    from callable_agents.core.conversation.turn.tools import ToolOutcome
    from callable_agents.core.runtime import Runtime


def build_test_tool(
    runtime: Runtime,
    tool_type: str,
    config: Mapping[str, Any] | None = None,
    *,
    tool_name: str | None = None,
    workspace_id: str = "workspace-1",
    agent_id: str = "agent-1",
    conversation_id: str | None = "conversation-1",
    channel_kind: str | None = "terminal",
) -> tuple[BaseTool, ToolContext]:
    """The tool of type ``tool_type`` with ``config``, named ``tool_name`` (default: the type's
    name), and the context its factory received."""
    from callable_agents.plugin import ToolContext

    registered = runtime.plugins.tools.get(tool_type)
    context = ToolContext(
        runtime=runtime,
        workspace_id=workspace_id,
        agent_id=agent_id,
        tool_name=tool_name or tool_type,
        config=registered.config_schema.model_validate(dict(config or {})),
        conversation_id=conversation_id,
        channel_kind=channel_kind,
    )
    return registered.factory(context), context


async def call_tool(tool: BaseTool, arguments: Mapping[str, Any], *, call_id: str = "call-1") -> ToolOutcome:
    """Call ``tool`` as a turn's tools node does: its text for the model and the effects it
    asks for (a ``SendItem``, a ``HandOff``, a ``QueueJob``), in ``ToolOutcome``."""
    from callable_agents.core.conversation.turn.tools import call_tool as call_as_the_turn_does

    return await call_as_the_turn_does(tool, dict(arguments), call_id=call_id)
