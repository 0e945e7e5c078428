"""What every CLI command shares: settings, running async code, opening a runtime, output.

Command modules import this at their top, so it imports the runtime (database, plugins,
knowledge) only inside the functions that open one: a command's ``--help`` stays fast.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from callable_agents.core.config import Settings
    from callable_agents.core.models import Workspace
    from callable_agents.core.runtime import Runtime

T = TypeVar("T")


def cli_settings(**overrides: object) -> Settings:
    from callable_agents.core.config import load_settings

    return load_settings(**overrides)


def run_async(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def run_serving(coro: Coroutine[Any, Any, T]) -> T:
    """Run a long-lived server or worker on uvloop when it is installed (``uvicorn[standard]``
    brings it), as ``uvicorn.run`` would: its event loop costs less per request and job."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def with_runtime(action: Callable[[Runtime], Awaitable[T]], *, settings: Settings | None = None, **kwargs: Any) -> T:
    """Open a runtime (database must be migrated), run ``action``, close everything."""

    from callable_agents.core.bootstrap import running

    async def go() -> T:
        async with running(settings or cli_settings(), **kwargs) as runtime:
            return await action(runtime)

    return run_async(go())


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def workspace_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--workspace SLUG`` (env CALLABLE_WORKSPACE; default: the only workspace, or ``demo``)."""
    return click.option(
        "--workspace",
        "-w",
        envvar="CALLABLE_WORKSPACE",
        default=None,
        help="Workspace slug or id (default: the only workspace there is).",
    )(function)


async def resolve_workspace(runtime: Runtime, slug_or_id: str | None) -> Workspace:
    """The workspace named, or the only one when none is named."""
    from callable_agents.core.errors import InvalidInput
    from callable_agents.core.store.workspaces import get_workspace, list_workspaces

    async with runtime.db.session() as session:
        if slug_or_id:
            return await get_workspace(session, slug_or_id)
        workspaces = await list_workspaces(session)
    if len(workspaces) == 1:
        return workspaces[0]
    if not workspaces:
        raise InvalidInput("no workspace yet: create one with `callable workspace create NAME`")
    raise InvalidInput("--workspace: several workspaces exist; name one (see `callable workspace list`)")
