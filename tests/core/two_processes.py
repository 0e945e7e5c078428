"""Two runtimes on one migrated PostgreSQL database, as two processes have (each its own
services: hub, relay, limits), for the tests of what processes share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.config import async_database_url
from callable_agents.core.db import migrate_sync
from callable_agents.core.runtime import Runtime
from callable_agents.testing.settings import make_settings

REDIS_URL = "redis://127.0.0.1:6379/0"


def transport_settings(transport: str) -> dict[str, Any]:
    """``postgresql``: nothing more; ``redis``: the local Redis."""
    return {"redis_url": REDIS_URL} if transport == "redis" else {}


@asynccontextmanager
async def two_runtimes(tmp_path: Path, database_url: str, **overrides: Any) -> AsyncIterator[tuple[Runtime, Runtime]]:
    migrate_sync(async_database_url(database_url))
    first = make_settings(tmp_path / "a", database_url, **overrides)
    second = make_settings(tmp_path / "b", database_url, master_key=first.master_key, **overrides)
    a = await open_runtime(first)
    try:
        b = await open_runtime(second)
        try:
            yield a, b
        finally:
            await close_runtime(b)
    finally:
        await close_runtime(a)
