"""Settings: one object, read from ``CALLABLE_*`` environment variables and ``.env``.

A bad value stops start-up with the variable's name and what was expected, instead of a
pydantic traceback (see :func:`load_settings`).

A plugin's own settings are a :class:`PluginSettings` subclass, read from the same
environment and ``.env`` and from the overrides given to :class:`Settings` (tests and
embedding applications pass them there): ``settings.for_plugin(MySettings)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callable_agents.core.errors import ConfigError

ENV_PREFIX = "CALLABLE_"
SECRET_SETTINGS = frozenset({"master_key", "previous_master_key", "metrics_token", "redis_url"})
# Variables no longer read, and what replaced them: a process that has one set says so.
REMOVED_SETTINGS = {
    "COALESCE_SECONDS": "every reply waited this burst window; a channel's reply policy replaces it "
    "(`replies: {strategy: wait, window_seconds: N}` on the channel in the apply file; the default, "
    "interrupt, answers at once and lets a newer message supersede a running turn)",
}

log = logging.getLogger(__name__)


class PluginSettings(BaseSettings):
    """Base class of a plugin's settings: fields named as their ``CALLABLE_*`` variable, lower case.

    Read once per :class:`Settings` by ``settings.for_plugin(cls)``: values given to
    ``Settings(...)`` win over the environment, which wins over ``.env``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _PLUGIN_SETTINGS_CLASSES.append(cls)


# Every PluginSettings subclass imported so far (plugins are imported when they load), so
# Settings.check_plugin_settings() can stop start-up on a bad value, as load_settings does.
_PLUGIN_SETTINGS_CLASSES: list[type[PluginSettings]] = []

P = TypeVar("P", bound=PluginSettings)


class Settings(BaseSettings):
    """Every setting the server, worker and CLI read.

    Paths are resolved relative to the current directory, so ``callable demo`` run from a
    checkout keeps its data in ``./.callable``.
    """

    # "allow": values meant for a plugin's settings (``Settings(<plugin>_base_url=...)``)
    # are kept in ``model_extra`` for for_plugin() instead of being dropped.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="allow"
    )

    data_dir: Path = Field(default=Path(".callable"), description="Where the SQLite file, key file and indexes live.")
    database_url: str | None = Field(
        default=None,
        description="sqlite:///path or postgresql://user@host/db; default: a SQLite file in the data directory.",
    )
    master_key: SecretStr | None = Field(
        default=None, description="Base64 of 32 random bytes; without it a key file in the data directory is used."
    )
    previous_master_key: SecretStr | None = Field(
        default=None,
        description="During a rotation with CALLABLE_MASTER_KEY: the old key, still accepted for unwrapping.",
    )
    public_base_url: str | None = Field(
        default=None,
        description="The URL customers and providers' webhooks reach this server at, e.g. https://bot.example.com.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object a line, with the workspace, channel, conversation, message and job ids."
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve /metrics on this port of its own (kept off the public network)."
    )
    metrics_host: str = Field(default="127.0.0.1", description="The interface the metrics port listens on.")
    metrics_token: SecretStr | None = Field(
        default=None, description="Serve the server's /metrics to requests with Authorization: Bearer <token>."
    )
    auto_migrate: bool = Field(default=False, description="Apply pending migrations at start-up.")
    max_request_bytes: int = Field(default=1_000_000, ge=1024, description="Largest request body accepted.")
    max_upload_bytes: int = Field(default=20_000_000, ge=1024, description="Largest knowledge file accepted.")
    allow_private_urls: bool = Field(
        default=False, description="Let URL sources and lookup tools reach private/loopback addresses."
    )
    disable_plugin_autoload: bool = Field(
        default=False, description="Load only the built-in plugins, not third-party entry points."
    )
    run_worker: bool = Field(default=True, description="Run the job worker inside the server process.")
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis://host:6379/0: live events and rate limits shared through Redis instead of PostgreSQL.",
    )
    job_lease_seconds: float = Field(
        default=60.0, ge=2, le=3600, description="How long a crashed worker's job stays claimed before others retry it."
    )

    # for_plugin()'s cache; model_copy() starts a new one, since its overrides may differ.
    _plugin_settings: dict[type[PluginSettings], PluginSettings] = PrivateAttr(default_factory=dict)

    def for_plugin(self, settings_class: type[P]) -> P:
        """The plugin settings ``settings_class`` for this process, read once and kept.

        A bad value raises :class:`ConfigError` naming the variable, like :func:`load_settings`.
        """
        # Through __pydantic_private__ itself: pydantic's __getattr__ for a private attribute
        # cost ~1.8 us, on every webhook and turn that reads a plugin's settings.
        cache: dict[type[PluginSettings], PluginSettings] = self.__pydantic_private__["_plugin_settings"]  # type: ignore[index]
        found = cache.get(settings_class)
        if found is None:
            given = {k: v for k, v in (self.model_extra or {}).items() if k in settings_class.model_fields}
            try:
                found = settings_class(**given)
            except ValidationError as exc:
                raise ConfigError(_readable(exc)) from None
            cache[settings_class] = found
        return found  # type: ignore[return-value]  # keyed by its own class

    def check_plugin_settings(self) -> None:
        """Read every loaded plugin's settings now: a bad value raises ConfigError at start-up,
        not on the first request that needs it."""
        for settings_class in list(_PLUGIN_SETTINGS_CLASSES):
            self.for_plugin(settings_class)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Settings:
        copied = super().model_copy(update=update, deep=deep)
        copied._plugin_settings = {}
        return copied

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("expected at least 16 characters (a random token)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL: ``sqlite+aiosqlite`` or ``postgresql+psycopg``."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'callable.db').resolve()}"
        return async_database_url(url)

    @property
    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.host}:{self.port}"


def async_database_url(url: str) -> str:
    """Map the URLs people write to the async drivers we ship."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+psycopg://")):
        return url
    raise ConfigError(
        f"{ENV_PREFIX}DATABASE_URL: expected sqlite:///PATH or postgresql://USER@HOST/DB, got {url.split(':', 1)[0]!r}"
    )


def sync_database_url(url: str) -> str:
    """The synchronous twin of an async URL (Alembic runs synchronously)."""
    return url.replace("sqlite+aiosqlite://", "sqlite://", 1)


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning a validation failure into one readable :class:`ConfigError`."""
    for name, instead in REMOVED_SETTINGS.items():
        if f"{ENV_PREFIX}{name}" in os.environ:
            log.warning("%s%s is set but no longer read: %s", ENV_PREFIX, name, instead)
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        settings.resolved_database_url  # noqa: B018 - validates the URL scheme early
        return settings
    except ValidationError as exc:
        raise ConfigError(_readable(exc)) from None


def _readable(exc: ValidationError) -> str:
    """One phrase per problem, naming the variable; secret values are never shown."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        shown = "" if field in SECRET_SETTINGS else f" (got {error.get('input')!r})"
        problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}{shown}")
    return "; ".join(problems)
