"""The plugin module named by the ``callable_agents`` entry point: the hooks it implements.

It registers the ``opening_hours`` tool type and listens to ``conversation_handed_off``. The
work lives in the other modules; this one only says what the plugin provides.
"""

from __future__ import annotations

from callable_agents.plugin import HandoffEvent, ToolType, hookimpl

from callable_opening_hours.config import OpeningHoursConfig
from callable_opening_hours.handoff_log import log_handoff
from callable_opening_hours.tool import build_opening_hours_tool

TOOL_TYPE = "opening_hours"


@hookimpl
def register_tools() -> list[ToolType]:
    return [
        ToolType(
            name=TOOL_TYPE,
            description="Tell whether the business is open now or at a given time, until when, and when it next opens.",
            config_schema=OpeningHoursConfig,
            factory=build_opening_hours_tool,
        )
    ]


@hookimpl
async def conversation_handed_off(event: HandoffEvent) -> None:
    """Append a line to the handoff log, when one is configured (see :mod:`.handoff_log`)."""
    await log_handoff(event)
