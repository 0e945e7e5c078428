"""A runtime for a test: the plugin under test loaded beside the built-ins, on a migrated
SQLite file of the test's own.

    async with open_test_runtime(tmp_path, plugins=[("pigeon", pigeon_plugin)]) as runtime:
        ...

Plugins are given as ``(name, module or object)`` pairs, exactly as ``load_plugins``'
``extra`` takes them: entry points are not read (autoload off), so what a test runs does not
depend on what else is installed in the environment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callable_agents.testing.settings import make_settings, migrated_sqlite_file

if TYPE_CHECKING:
    from callable_agents.core.config import Settings
    from callable_agents.core.plugins import Plugins
    from callable_agents.core.runtime import Runtime

PluginPair = tuple[str, object]


def load_test_plugins(*plugins: PluginPair) -> Plugins:
    """The built-in plugins plus ``plugins``, checked as at start-up (a clash or a bad hook
    raises :class:`~callable_agents.core.errors.PluginError` naming the plugin)."""
    from callable_agents.core.plugins import load_plugins

    return load_plugins(autoload=False, extra=list(plugins))


def runtime_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings on a migrated SQLite file in ``data_dir`` (the server's defaults otherwise: a
    message's turn starts as soon as the worker runs)."""
    migrated_sqlite_file(data_dir)
    values: dict[str, Any] = dict(overrides)
    return make_settings(data_dir, **values)


@asynccontextmanager
async def open_test_runtime(
    data_dir: Path | None = None,
    *,
    settings: Settings | None = None,
    plugins: Iterable[PluginPair] | Plugins = (),
) -> AsyncIterator[Runtime]:
    """An open runtime (closed on exit) with ``plugins`` loaded beside the built-ins.

    Give ``data_dir`` for the default settings (:func:`runtime_settings`), or ``settings``.
    ``plugins`` may also be an already loaded :class:`Plugins`.
    """
    from callable_agents.core.bootstrap import close_runtime, open_runtime
    from callable_agents.core.plugins import Plugins

    if settings is None:
        if data_dir is None:
            raise TypeError("open_test_runtime: give data_dir (e.g. tmp_path / 'data') or settings")
        settings = await asyncio.to_thread(runtime_settings, data_dir)  # may migrate: blocking
    # Loading imports modules: off the event loop, as at start-up.
    loaded = plugins if isinstance(plugins, Plugins) else await asyncio.to_thread(load_test_plugins, *plugins)
    runtime = await open_runtime(settings, plugins=loaded)
    try:
        yield runtime
    finally:
        await close_runtime(runtime)
