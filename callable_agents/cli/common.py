"""What every CLI command shares: settings, running async code, opening a runtime, output.

Command modules import this at their top, so it imports the runtime (database, plugins,
knowledge) only inside the functions that open one: a command's ``--help`` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
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


def json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--json``: print the objects as JSON for scripts (the default is for people)."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")(function)


def _cell(value: object) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str, sort_keys=True)
    return " ".join(str(value).split()) if "\n" in str(value) else str(value)


def echo_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str], *, empty: str) -> None:
    """Rows as an aligned table under upper-case headers; ``empty`` when there are none."""
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    headers = [column.upper().replace("_", " ") for column in columns]
    widths = [max(len(line[index]) for line in [headers, *cells]) for index in range(len(columns))]
    for line in [headers, *cells]:
        click.echo("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip())


def _flatten(mapping: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def echo_fields(fields: Mapping[str, object]) -> None:
    """One object as aligned ``key: value`` lines; a mapping's fields are listed below its
    key, indented, nested ones with dotted names (``appearance.color``)."""
    width = max((len(key) for key in fields), default=0) + 1
    for key, value in fields.items():
        if isinstance(value, dict) and value:
            click.echo(f"{key}:")
            inner = _flatten(value)
            inner_width = max(len(name) for name in inner) + 1
            for name, inner_value in inner.items():
                click.echo(f"  {(name + ':').ljust(inner_width)} {_cell(inner_value)}")
        else:
            click.echo(f"{(key + ':').ljust(width)} {_cell(value)}")


def choose(flag: str, what: str, names: Sequence[str], fix: str) -> str:
    """The error text for an ambiguous choice: which flag to pass, and the choices."""
    return f"{flag}: several {what} exist ({', '.join(names)}); name one with {fix}, e.g. {flag} {names[0]}"


class Progress:
    """Progress of one long step on stderr: a bar on a terminal, plain lines otherwise.

    ``update(done)`` moves it; ``finish(summary)`` ends it with ``summary`` and the elapsed
    time (``embedded 799 passage(s) in 7.1s``). Without a terminal a line is written at
    every tenth of the way, so logs show it moving without a line per item.
    """

    def __init__(self, label: str, total: int, *, interactive: bool | None = None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self.started = time.monotonic()
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self._bar: Any = None
        self._next_line = 0
        if self.interactive:
            self._bar = click.progressbar(length=self.total or 1, label=f"  {label}", file=sys.stderr, show_pos=True)
            self._bar.__enter__()
        else:
            click.echo(f"  {label}: 0/{self.total}", err=True)
            self._next_line = self._step()

    def _step(self) -> int:
        return self.done + max(1, -(-self.total // 10))

    def update(self, done: int) -> None:
        done = min(max(done, self.done), self.total) if self.total else done
        if self._bar is not None:
            self._bar.update(done - self.done)
        elif done >= self._next_line and done < self.total:
            click.echo(f"  {self.label}: {done}/{self.total}", err=True)
        self.done = done
        if self._bar is None and done >= self._next_line:
            self._next_line = self._step()

    def finish(self, summary: str | None = None) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
        elapsed = time.monotonic() - self.started
        click.echo(f"  {summary or f'{self.label}: {self.done}/{self.total}'} in {elapsed:.1f}s", err=True)


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
    names = [workspace.slug for workspace in workspaces]
    raise InvalidInput(choose("--workspace", "workspaces", names, "-w SLUG (or set CALLABLE_WORKSPACE)"))
