"""Settings: one object, read from ``CALLABLE_*`` environment variables and ``.env``.

A bad value stops start-up with the variable's name and what was expected, instead of a
pydantic traceback (see :func:`load_settings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callable_agents.core.errors import ConfigError

ENV_PREFIX = "CALLABLE_"
SECRET_SETTINGS = frozenset({"master_key", "previous_master_key"})


class Settings(BaseSettings):
    """Every setting the server, worker and CLI read.

    Paths are resolved relative to the current directory, so ``callable demo`` run from a
    checkout keeps its data in ``./.callable``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
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
        default=None, description="The URL customers and Twilio reach this server at, e.g. https://bot.example.com."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
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
    twilio_validate_signatures: bool = Field(
        default=True, description="Development switch: False lets unsigned Twilio webhooks through, with a warning."
    )
    twilio_api_base_url: str | None = Field(default=None, description="Override api.twilio.com (tests, proxies).")
    twilio_messaging_base_url: str | None = Field(default=None, description="Override messaging.twilio.com.")
    coalesce_seconds: float = Field(default=2.0, ge=0, le=60, description="Burst window for customer messages.")
    job_lease_seconds: float = Field(
        default=60.0, ge=2, le=3600, description="How long a crashed worker's job stays claimed before others retry it."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

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
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        settings.resolved_database_url  # noqa: B018 - validates the URL scheme early
        return settings
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            shown = "" if field in SECRET_SETTINGS else f" (got {error.get('input')!r})"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}{shown}")
        raise ConfigError("; ".join(problems)) from None
