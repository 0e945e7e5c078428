"""The integration-provider contract: a provider's fields and how its credentials are checked.

A plugin that talks to a provider (a messaging account, a model server) registers a
:class:`ProviderType` from ``register_integration_providers()``: the *public* fields shown in
clear, the *secret* fields the vault encrypts, and optionally ``verify``, which proves a new
integration's credentials work before anything is stored. The field models use the
validators below so every error names the field and what was expected, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime

MAX_SECRET_CHARS = 4096
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def pattern_check(pattern: str, expected: str) -> AfterValidator:
    """A validator for a field that must match ``pattern``; the error says ``expected ...``."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"expected {expected}")
        return value

    return AfterValidator(check)


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL, e.g. https://api.openai.com/v1")
    return value.rstrip("/")


def _check_text(value: str) -> str:
    if not value or len(value) > 200 or _CONTROL_CHARS.search(value):
        raise ValueError("expected 1-200 printable characters")
    return value


def _check_secret(value: str) -> str:
    if not value:
        raise ValueError("expected a non-empty value")
    if len(value) > MAX_SECRET_CHARS:
        raise ValueError(f"expected at most {MAX_SECRET_CHARS} characters")
    if _CONTROL_CHARS.search(value):
        raise ValueError("expected printable characters (no control characters or line breaks)")
    return value


HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
Text = Annotated[str, AfterValidator(_check_text)]
SecretText = Annotated[str, AfterValidator(_check_secret)]


class PublicFields(BaseModel):
    """Fields shown in clear. Unknown fields are an error, so typos don't pass silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class SecretFields(BaseModel):
    """Write-only fields. All optional here: ``required`` says which a new integration needs,
    because an update may leave a stored secret as it is."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True, hide_input_in_errors=True)
    required: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fields={sorted(self.model_fields_set)})"

    __str__ = __repr__


@dataclass(frozen=True)
class StoredIntegration:
    """A read-only snapshot of one connected integration, as plugins receive it.

    ``secret_fields`` says which secrets are set; their values come only from
    ``read_integration_secret(runtime, integration, field)``. The rest is opaque to plugins.
    """

    id: str
    workspace_id: str
    provider: str
    name: str
    public: Mapping[str, Any]
    secret_fields: frozenset[str]
    updated_at: datetime | None
    # The vault tokens and the workspace's wrapped data key, for read_integration_secret.
    sealed: Any = field(default=None, repr=False, compare=False)


# (runtime, the integration about to be stored) -> the account's public facts, e.g.
# {"sid": ..., "friendly_name": ...}; raise a CallableError saying why the provider refused.
VerifyFunction = Callable[["Runtime", StoredIntegration], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True)
class ProviderType:
    """A kind of integration: its fields and, optionally, how to check its credentials."""

    name: str
    description: str
    public: type[PublicFields]
    secrets: type[SecretFields]
    verify: VerifyFunction | None = None
    title: str = ""  # how people see the name, e.g. "OpenAI"; empty: the name

    @property
    def display_name(self) -> str:
        return self.title or self.name

    @property
    def public_fields(self) -> tuple[str, ...]:
        return tuple(self.public.model_fields)

    @property
    def secret_fields(self) -> tuple[str, ...]:
        """In declaration order: the order the CLI reads them from stdin."""
        return tuple(self.secrets.model_fields)

    @property
    def required_secrets(self) -> frozenset[str]:
        return self.secrets.required
