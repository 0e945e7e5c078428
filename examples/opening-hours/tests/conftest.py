"""Fixtures for the example plugin's tests: the plugin registered exactly as docs/plugins.md
says (no installation needed), and a real runtime for the tools' ``ToolContext``.

These tests live outside the repository's ``tests`` package (no ``__init__.py`` here), so
their module names start with ``test_opening_hours_`` to stay unique in a combined run.
"""

from __future__ import annotations

import base64
import copy
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))  # importable without `pip install -e examples/opening-hours`

import callable_opening_hours.plugin as opening_hours_plugin  # noqa: E402
from callable_agents.core.bootstrap import close_runtime, open_runtime  # noqa: E402
from callable_agents.core.config import Settings  # noqa: E402
from callable_agents.core.plugins import Plugins, load_plugins  # noqa: E402
from callable_agents.core.runtime import Runtime  # noqa: E402
from callable_agents.core.contracts.tools import ToolContext  # noqa: E402

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
def plugins() -> Plugins:
    return load_plugins(autoload=False, extra=[("opening_hours", opening_hours_plugin)])


@pytest_asyncio.fixture
async def runtime(tmp_path: Path, plugins: Plugins) -> AsyncIterator[Runtime]:
    """A real runtime with the plugin loaded.

    Its SQLite file is left unmigrated: these tests never touch the database, and migrating
    would only slow each test down.
    """
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'data' / 'callable.db'}",
        master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        disable_plugin_autoload=True,
        run_worker=False,
    )
    runtime = await open_runtime(settings, plugins=plugins, require_migrated=False)
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


ToolBuilder = Callable[..., tuple["BaseTool", ToolContext]]


@pytest.fixture
def bar_config() -> dict[str, Any]:
    return copy.deepcopy(BAR_CONFIG)


@pytest.fixture
def build_tool(runtime: Runtime) -> ToolBuilder:
    """Build the tool as the pipeline does: the registered factory, given a real ``ToolContext``
    whose config the registered schema validated."""

    def build(config: dict[str, Any], tool_name: str = "opening_status") -> tuple[BaseTool, ToolContext]:
        tool_type = runtime.plugins.tools.get("opening_hours")
        context = ToolContext(
            runtime=runtime,
            workspace_id="workspace-1",
            agent_id="agent-1",
            tool_name=tool_name,
            config=tool_type.config_schema.model_validate(config),
            conversation_id="conversation-1",
            channel_kind="widget",
        )
        return tool_type.factory(context), context

    return build
