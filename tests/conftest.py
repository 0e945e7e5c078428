"""Shared fixtures: real databases (a SQLite file and a fresh PostgreSQL database), settings,
and an open runtime. Settings come from the test kit (:mod:`callable_agents.testing.settings`),
the same a plugin author's tests get.

PostgreSQL tests run against the local server (``CALLABLE_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``), each test in a database of its own. Without
a server they skip, saying how to enable them; under CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.config import Settings, async_database_url
from callable_agents.core.db import migrate_sync
from callable_agents.core.runtime import Runtime
from callable_agents.testing.settings import make_settings, new_master_key

__all__ = ["make_settings", "new_master_key"]  # the kit's, imported by tests from here

POSTGRES_ADMIN_URL = os.environ.get("CALLABLE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

for _name in [name for name in os.environ if name.startswith("CALLABLE_") and not name.startswith("CALLABLE_TEST_")]:
    os.environ.pop(_name)  # the developer's own settings must not leak into tests


def _postgres_unavailable_reason() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:
        return (
            f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL} ({type(exc).__name__}). Start it "
            "(`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) or set "
            "CALLABLE_TEST_POSTGRES_URL to enable these tests"
        )


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    reason = _postgres_unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true requires PostgreSQL tests to run: {reason}")
        pytest.skip(reason)
    return POSTGRES_ADMIN_URL


@pytest.fixture
def fresh_postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (dropped afterwards)."""
    name = f"callable_test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = postgres_admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A plain (sqlite:// or postgresql://) URL of an empty database on the chosen backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'callable.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """Like ``empty_database_url``, migrated to the latest schema."""
    migrate_sync(async_database_url(empty_database_url))
    return empty_database_url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings on the parametrised backend (the test runs once on SQLite, once on PostgreSQL)."""
    return make_settings(tmp_path / "data", database_url)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings on a migrated SQLite file, for tests that don't depend on the backend."""
    settings = make_settings(tmp_path / "data")
    migrate_sync(settings.resolved_database_url)
    return settings


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(settings)
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


@pytest.fixture
async def sqlite_runtime(sqlite_settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(sqlite_settings)
    try:
        yield runtime
    finally:
        await close_runtime(runtime)
