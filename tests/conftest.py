"""Shared fixtures: real databases (a SQLite file and a fresh PostgreSQL database), settings,
and an open runtime. Settings come from the test kit (:mod:`callable_agents.testing.settings`),
the same a plugin author's tests get.

PostgreSQL tests run against the local server (``CALLABLE_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``), each test in a database of its own. Without
a server they skip, saying how to enable them; under CI (``CI=true``) they fail instead.

A migrated database is a copy of one migrated once per process: PostgreSQL's ``CREATE
DATABASE ... TEMPLATE``, and the kit's copied SQLite file (``migrated_sqlite_file``). Tests
of the migrations themselves start from ``empty_database_url``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.config import Settings, async_database_url
from callable_agents.core.db import migrate_sync
from callable_agents.core.runtime import Runtime
from callable_agents.testing.settings import make_settings, migrated_sqlite_file, new_master_key

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


@contextmanager
def _new_postgres_database(admin_url: str, template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (a copy of ``template`` if given), dropped afterwards."""
    name = f"callable_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (dropped afterwards)."""
    with _new_postgres_database(postgres_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def migrated_postgres_template(postgres_admin_url: str) -> Iterator[str]:
    """The name of a PostgreSQL database migrated once for this process (an xdist worker has
    its own), which each test's migrated database is copied from; nothing else connects to it."""
    with _new_postgres_database(postgres_admin_url) as url:
        migrate_sync(async_database_url(url))
        yield url.rsplit("/", 1)[1]


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
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Like ``empty_database_url``, migrated to the latest schema."""
    if backend == "sqlite":
        yield f"sqlite:///{migrated_sqlite_file(tmp_path)}"
        return
    template = request.getfixturevalue("migrated_postgres_template")
    with _new_postgres_database(str(request.getfixturevalue("postgres_admin_url")), template) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings on the parametrised backend (the test runs once on SQLite, once on PostgreSQL)."""
    return make_settings(tmp_path / "data", database_url)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings on a migrated SQLite file, for tests that don't depend on the backend."""
    settings = make_settings(tmp_path / "data")
    migrated_sqlite_file(settings.data_dir)
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
