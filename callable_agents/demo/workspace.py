"""The demo workspace, Bella's Bakery & Café: the packaged ``demo/demo.yaml`` and applying it.

:func:`apply_demo` applies the file to the workspace ``demo`` (idempotently, as
``callable apply`` would) and returns the links to show the user.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from callable_agents.apply import ApplyReport, apply_document
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.channels import list_channels
from callable_agents.core.store.workspaces import get_workspace

log = logging.getLogger(__name__)

DEMO_WORKSPACE = "demo"
DEMO_FILE_NAME = "demo.yaml"
WIDGET_TEST_PAGE = "/demo/widget"  # served by the back office; linked from here


def demo_file_text() -> str:
    return resources.files("callable_agents").joinpath("demo", DEMO_FILE_NAME).read_text(encoding="utf-8")


def demo_file_dir() -> Path:
    return Path(str(resources.files("callable_agents").joinpath("demo")))


async def apply_demo_report(runtime: Runtime) -> ApplyReport:
    """Apply the packaged demo file to the ``demo`` workspace and return the report.

    Channels whose plugin is not loaded are left out with a note rather than failing the demo.
    """
    report = await apply_document(
        runtime,
        demo_file_text(),
        demo_file_dir(),
        label=DEMO_FILE_NAME,
        workspace=DEMO_WORKSPACE,
        skip_unregistered_channels=True,
    )
    for note in report.notes:
        log.warning("demo: %s", note)
    for failure in report.failed_sources:
        log.warning("demo: failed source %s", failure)
    return report


async def apply_demo(runtime: Runtime) -> list[tuple[str, str]]:
    """Apply the demo; return (label, path) pairs for the channels that exist, to show the user."""
    await apply_demo_report(runtime)
    links: list[tuple[str, str]] = []
    async with runtime.db.session() as session:
        workspace = await get_workspace(session, DEMO_WORKSPACE)
        channels = await list_channels(session, workspace.id)
    for channel in channels:
        if channel.kind == "page" and channel.slug:
            links.append(("Chat page", f"/chat/{channel.slug}"))
        elif channel.kind == "widget":
            links.append(("Widget test page", WIDGET_TEST_PAGE))
    return links
