"""Opening and closing a process's :class:`Runtime` (server, worker, CLI)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from callable_agents.core.config import Settings
from callable_agents.core.db import Database
from callable_agents.core.plugins import Plugins, load_plugins
from callable_agents.core.runtime import Runtime, Services
from callable_agents.core.store.key_rotation import finish_interrupted_rotation
from callable_agents.core.store.vault import Vault

log = logging.getLogger(__name__)


async def open_runtime(
    settings: Settings,
    *,
    plugins: Plugins | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    migrate: bool | None = None,
    require_migrated: bool = True,
) -> Runtime:
    """Load plugins, open the database (migrating it when asked) and the vault.

    Plugins and the master key load first, so a broken plugin or a bad key stops start-up
    before anything touches data.
    """
    if plugins is None:
        plugins = await asyncio.to_thread(
            load_plugins, autoload=not settings.disable_plugin_autoload, extra=list(extra_plugins)
        )
    settings.check_plugin_settings()  # the loaded plugins' own CALLABLE_* settings
    vault, db = await asyncio.to_thread(_open_files, settings)
    try:
        if migrate if migrate is not None else settings.auto_migrate:
            await db.migrate()
        elif require_migrated:
            await db.require_migrated()
        if vault.pending_key_id is not None and await db.is_migrated():
            await finish_interrupted_rotation(db, vault)
    except BaseException:
        await db.dispose()
        raise
    return Runtime(settings=settings, db=db, vault=vault, plugins=plugins)


def _open_files(settings: Settings) -> tuple[Vault, Database]:
    """The blocking part of start-up (directories, the key file), run off the event loop."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Vault.from_settings(settings), Database(settings.resolved_database_url)


async def close_runtime(runtime: Runtime) -> None:
    """Close what parts opened (services with ``aclose``/``close``), then the database."""
    for name, service in reversed(list(runtime.services.created())):
        closer = getattr(service, "aclose", None) or getattr(service, "close", None)
        if closer is None:
            continue
        try:
            result = closer()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("closing service %r failed", name)
    runtime.services = Services()
    await runtime.db.dispose()


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    plugins: Plugins | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    migrate: bool | None = None,
    require_migrated: bool = True,
) -> AsyncIterator[Runtime]:
    """:func:`open_runtime` for the length of a ``with`` block, closed after it."""
    runtime = await open_runtime(
        settings, plugins=plugins, extra_plugins=extra_plugins, migrate=migrate, require_migrated=require_migrated
    )
    try:
        yield runtime
    finally:
        await close_runtime(runtime)
