"""Settings for a test: its own data directory, a random master key, no plugin autoload.

A test runtime must not read the developer's configuration: :func:`make_settings` ignores
``.env`` files, and the kit's ``callable_settings`` fixture also unsets the ``CALLABLE_*``
environment variables for the test's duration.

Migrating a new SQLite file takes about a second, so :func:`migrated_sqlite_file` builds the
schema once per process and copies the file for each test.
"""

from __future__ import annotations

import atexit
import base64
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callable_agents.core.config import Settings

DATABASE_FILE = "callable.db"
# Not cleared: they configure the tests themselves (e.g. CALLABLE_TEST_POSTGRES_URL).
KEPT_VARIABLE_PREFIX = "CALLABLE_TEST_"

_schema_template: Path | None = None


def new_master_key() -> str:
    """A random vault master key, base64 as ``CALLABLE_MASTER_KEY`` takes it."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def make_settings(data_dir: Path, database_url: str | None = None, **overrides: object) -> Settings:
    """Settings for a test: ``data_dir`` of its own, a random master key, built-in plugins only
    (plus the ones given to the runtime), no worker in the background, private URLs allowed
    (loopback fakes). ``database_url`` defaults to a SQLite file in ``data_dir`` (not migrated:
    see :func:`migrated_sqlite_file`); ``overrides`` are any other :class:`Settings` fields."""
    from callable_agents.core.config import Settings

    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url or f"sqlite:///{data_dir / DATABASE_FILE}",
        "master_key": new_master_key(),
        "disable_plugin_autoload": True,
        "run_worker": False,
        "allow_private_urls": True,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]  # pydantic-settings init option


def callable_environment_variables() -> list[str]:
    """The ``CALLABLE_*`` variables set now that would configure a runtime (not the tests' own)."""
    return [name for name in os.environ if name.startswith("CALLABLE_") and not name.startswith(KEPT_VARIABLE_PREFIX)]


def migrated_sqlite_file(data_dir: Path) -> Path:
    """A SQLite database at the latest schema, at ``data_dir/callable.db`` (a copy of a file
    migrated once per process); returns its path."""
    global _schema_template
    if _schema_template is None or not _schema_template.exists():
        from callable_agents.core.db import migrate_sync

        directory = Path(tempfile.mkdtemp(prefix="callable-test-schema-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        template = directory / DATABASE_FILE
        migrate_sync(f"sqlite+aiosqlite:///{template}")
        _schema_template = template
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / DATABASE_FILE
    shutil.copyfile(_schema_template, target)
    return target
