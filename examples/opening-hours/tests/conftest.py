"""Fixtures for the example plugin's tests, on the Callable Agents test kit.

``callable_agents.testing`` is a pytest plugin installed with ``callable-agents``: its
``callable_*`` fixtures give a real runtime on a temporary SQLite file, a workspace, an agent
and one turn through the real pipeline, with the loopback fake OpenAI server as the model.
This file only says what is ours: the plugin to load, and an agent that has our tool.

These tests live outside the repository's ``tests`` package (no ``__init__.py`` here), so
their module names start with ``test_opening_hours_`` to stay unique in a combined run.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from callable_agents.plugin import Runtime, ToolContext
from callable_agents.testing import build_test_tool

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))  # importable without `pip install -e examples/opening-hours`

import callable_opening_hours.plugin as opening_hours_plugin  # noqa: E402

# A café-bar in Madrid: split weekday hours, late Friday and Saturday nights, closed Sundays.
BAR_CONFIG: dict[str, Any] = {
    "timezone": "Europe/Madrid",
    "weekly": {
        "mon": ["08:00-14:00", "17:00-20:30"],
        "tue": ["08:00-14:00", "17:00-20:30"],
        "wed": ["08:00-14:00", "17:00-20:30"],
        "thu": ["08:00-14:00", "17:00-20:30"],
        "fri": ["08:00-14:00", "17:00-20:30", "22:00-02:00"],
        "sat": ["22:00-03:00"],
        "sun": [],
    },
    "closures": [
        {"date": "2025-01-06", "note": "Epiphany"},
        {"date": "2025-11-01", "note": "All Saints' Day"},
        {"date": "2025-12-25", "note": "Christmas Day"},
        "2025-12-26",
    ],
}


@pytest.fixture
def callable_plugins_under_test() -> list[tuple[str, object]]:
    """The kit loads our plugin beside the built-ins, exactly as its entry point would."""
    return [("opening_hours", opening_hours_plugin)]


@pytest.fixture
def callable_agent_spec() -> dict[str, Any]:
    """The bar's agent, with our tool as a workspace file would give it."""
    return {
        "name": "assistant",
        "system_prompt": "You are the assistant of a café-bar in Madrid. Check the opening hours with your tool.",
        "tools": [{"type": "opening_hours", "name": "opening_status", "config": copy.deepcopy(BAR_CONFIG)}],
    }


ToolBuilder = Callable[..., tuple["BaseTool", ToolContext]]


@pytest.fixture
def bar_config() -> dict[str, Any]:
    return copy.deepcopy(BAR_CONFIG)


@pytest.fixture
def build_tool(callable_runtime: Runtime) -> ToolBuilder:
    """Build the tool as a turn does: the registered factory, given a real ``ToolContext``
    whose config the registered schema validated."""

    def build(config: dict[str, Any], tool_name: str = "opening_status") -> tuple[BaseTool, ToolContext]:
        return build_test_tool(
            callable_runtime, "opening_hours", config, tool_name=tool_name, channel_kind="widget"
        )

    return build
