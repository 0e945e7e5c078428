"""Integrations: a workspace's provider accounts (Twilio, OpenAI), with write-only secrets.

Each provider has a schema: *public* fields, stored in clear in ``Integration.public``, and
*secret* fields, stored as vault tokens in ``Integration.secrets`` (see
:mod:`callable_agents.core.store.vault`). Secrets go in through :func:`connect_integration` and come
out only through :func:`read_secret`, for the code that calls the provider; every view meant
for people (:func:`describe_integration`) shows ``has_<field>`` and at most the last four
characters, which are kept in clear at write time (``public["_last4"]``) so listing never
decrypts anything.

Every function takes the workspace and filters by it: one workspace never sees another's rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.core.db import find_named, scoped
from callable_agents.core.errors import Conflict, InvalidInput, NotFound, VaultError
from callable_agents.core.models import Agent, Channel, Integration, Workspace, new_id
from callable_agents.core.store.vault import Vault

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_SECRET_CHARS = 4096
LAST4_KEY = "_last4"
# Below this length the last four characters would give away too much of the secret.
MIN_CHARS_FOR_LAST4 = 12
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


# -- field validators: messages say what was expected and never repeat the value ------------


def _pattern_check(pattern: str, expected: str) -> AfterValidator:
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


AccountSid = Annotated[str, _pattern_check(r"AC[0-9a-fA-F]{32}", "'AC' followed by 32 hex characters")]
ApiKeySid = Annotated[str, _pattern_check(r"SK[0-9a-fA-F]{32}", "'SK' followed by 32 hex characters")]
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


class TwilioPublic(PublicFields):
    account_sid: AccountSid = Field(description="Account SID from the Twilio Console (AC...).")
    api_key_sid: ApiKeySid | None = Field(default=None, description="Optional API key SID (SK...).")


class TwilioSecrets(SecretFields):
    required = frozenset({"auth_token"})
    auth_token: SecretText | None = Field(default=None, description="Auth Token (also used to check webhooks).")
    api_key_secret: SecretText | None = Field(default=None, description="Secret of the API key, if one is used.")


class OpenAIPublic(PublicFields):
    base_url: HttpUrl | None = Field(default=None, description="An OpenAI-compatible server (default: OpenAI).")
    organization: Text | None = Field(default=None, description="OpenAI organization id, if any.")


class OpenAISecrets(SecretFields):
    required = frozenset({"api_key"})
    api_key: SecretText | None = Field(default=None, description="API key.")


class HttpPublic(PublicFields):
    base_url: HttpUrl | None = Field(default=None, description="The API's base URL, for reference.")


class HttpSecrets(SecretFields):
    """Credentials for a business's own API or webhook receiver, referenced by tools as
    ``{{secret:NAME.token}}`` (lookup headers) or ``{integration: NAME, field: signing_secret}``."""

    token: SecretText | None = Field(default=None, description="A bearer token.")
    api_key: SecretText | None = Field(default=None, description="An API key.")
    signing_secret: SecretText | None = Field(default=None, description="A secret for signing webhooks (HMAC).")


@dataclass(frozen=True)
class ProviderSchema:
    provider: str
    description: str
    public: type[PublicFields]
    secrets: type[SecretFields]

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


PROVIDERS: dict[str, ProviderSchema] = {
    "twilio": ProviderSchema("twilio", "A Twilio account (WhatsApp sender).", TwilioPublic, TwilioSecrets),
    "openai": ProviderSchema("openai", "OpenAI or an OpenAI-compatible server.", OpenAIPublic, OpenAISecrets),
    "http": ProviderSchema("http", "A business API or webhook receiver (token, API key, signing secret).", HttpPublic, HttpSecrets),
}


def provider_schema(provider: str) -> ProviderSchema:
    schema = PROVIDERS.get(provider)
    if schema is None:
        raise InvalidInput(f"provider: expected one of {', '.join(sorted(PROVIDERS))}, got {str(provider)[:40]!r}")
    return schema


def _validation_problems(exc: ValidationError, model: type[BaseModel], *, secret: bool) -> list[str]:
    """One readable phrase per error; the value itself is never included."""
    expected = ", ".join(model.model_fields)
    kind = "secret" if secret else "field"
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "?"
        if error["type"] == "extra_forbidden":
            problems.append(f"{field}: unknown {kind} (expected one of: {expected})")
        elif error["type"] == "missing":
            problems.append(f"{field}: required")
        elif error["type"] == "value_error":
            problems.append(f"{field}: {error['ctx']['error']}")
        elif error["type"] in ("string_type", "string_sub_type"):
            problems.append(f"{field}: expected a string")
        else:
            problems.append(f"{field}: {error['msg']}")
    return problems


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidInput(
            "name: expected 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return name


def last4(secret: str) -> str | None:
    """The hint shown for a secret: its last four characters, or nothing for a short secret."""
    return secret[-4:] if len(secret) >= MIN_CHARS_FOR_LAST4 else None


# -- data access --------------------------------------------------------------------------


async def list_integrations(
    session: AsyncSession, workspace_id: str, *, provider: str | None = None
) -> Sequence[Integration]:
    query = scoped(Integration, workspace_id).order_by(Integration.name)
    if provider is not None:
        query = query.where(Integration.provider == provider)
    return (await session.scalars(query)).all()


async def find_integration(session: AsyncSession, workspace_id: str, name_or_id: str) -> Integration | None:
    return await find_named(session, Integration, workspace_id, name_or_id)


async def get_integration(session: AsyncSession, workspace_id: str, name_or_id: str) -> Integration:
    integration = await find_integration(session, workspace_id, name_or_id)
    if integration is None:
        raise NotFound(
            f"integration {name_or_id[:100]!r} not found in this workspace (`callable integrations list` shows them)"
        )
    return integration


async def _ensure_workspace_key(session: AsyncSession, vault: Vault, workspace: Workspace) -> None:
    """Give a workspace created without a data key one now (older rows, hand-made fixtures)."""
    if workspace.wrapped_key and workspace.key_id:
        return
    row = await session.get(Workspace, workspace.id, with_for_update=True)
    if row is None:
        raise NotFound(f"workspace {workspace.id!r} not found")
    if not (row.wrapped_key and row.key_id):
        row.wrapped_key, row.key_id = vault.new_wrapped_key(row.id)
        await session.flush()
    workspace.wrapped_key, workspace.key_id = row.wrapped_key, row.key_id


async def connect_integration(
    session: AsyncSession,
    vault: Vault,
    workspace: Workspace,
    *,
    provider: str,
    name: str,
    public: Mapping[str, Any],
    secrets: Mapping[str, str | None],
) -> Integration:
    """Create the integration ``name``, or update it if the workspace already has one.

    On update, public fields given replace the stored ones (a ``None`` value clears an optional
    one) and the others are kept; secrets given replace the stored ones and secrets left out
    (or ``None``) are kept, so changing one key does not require re-entering the others. A new
    integration needs every required secret. The provider of an existing integration cannot
    change. Secrets are encrypted before anything is stored and never appear in errors.
    """
    schema = provider_schema(provider)
    _check_name(name)
    if not isinstance(public, Mapping) or not isinstance(secrets, Mapping):
        raise InvalidInput("public and secrets: expected objects of field names to values")
    existing = await find_integration(session, workspace.id, name)
    if existing is not None and existing.name != name:
        existing = None  # ``name`` matched another integration's id: that is not this one
    if existing is not None and existing.provider != provider:
        raise Conflict(
            f"integration {name!r} already exists with provider {existing.provider!r}; "
            f"remove it first or pick another name"
        )

    stored_public = {k: v for k, v in (existing.public if existing else {}).items() if not k.startswith("_")}
    merged_public = {**stored_public, **public}
    merged_public = {k: v for k, v in merged_public.items() if v is not None}
    given_secrets = {k: v for k, v in secrets.items() if v is not None}
    problems: list[str] = []
    try:
        public_values = schema.public.model_validate(merged_public).model_dump(exclude_none=True)
    except ValidationError as exc:
        problems += _validation_problems(exc, schema.public, secret=False)
    try:
        secret_values = schema.secrets.model_validate(given_secrets).model_dump(exclude_none=True)
    except ValidationError as exc:
        problems += _validation_problems(exc, schema.secrets, secret=True)
    if not problems:
        stored_secret_fields = set(existing.secrets) if existing else set()
        missing = sorted(schema.required_secrets - set(secret_values) - stored_secret_fields)
        problems += [f"{field}: required" for field in missing]
    if problems:
        raise InvalidInput(f"{provider} integration {name!r}: " + "; ".join(problems))

    await _ensure_workspace_key(session, vault, workspace)
    integration = existing or Integration(id=new_id(), workspace_id=workspace.id, provider=provider, name=name)
    tokens = dict(existing.secrets) if existing else {}
    hints = dict((existing.public or {}).get(LAST4_KEY, {})) if existing else {}
    for field, value in secret_values.items():
        tokens[field] = vault.encrypt(workspace, integration.id, field, value)
        hints[field] = last4(value)
    # New dict objects: JSON columns only notice reassignment, not in-place changes.
    integration.public = {**public_values, LAST4_KEY: hints}
    integration.secrets = tokens
    if existing is None:
        session.add(integration)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"integration {name!r} was created at the same time by another request; try again") from None
    return integration


async def remove_integration(session: AsyncSession, workspace_id: str, name_or_id: str) -> Integration:
    """Delete an integration that no channel or agent uses (its secrets go with it)."""
    integration = await get_integration(session, workspace_id, name_or_id)
    channels = (
        await session.scalars(
            select(Channel.name).where(Channel.workspace_id == workspace_id, Channel.integration_id == integration.id)
        )
    ).all()
    if channels:
        raise Conflict(
            f"integration {integration.name!r} is used by channel(s) {', '.join(sorted(channels))}; "
            "remove or change those first"
        )
    agents = [
        agent.name
        for agent in (await session.scalars(scoped(Agent, workspace_id))).all()
        if (agent.model_settings or {}).get("integration") in (integration.name, integration.id)
    ]
    if agents:
        raise Conflict(
            f"integration {integration.name!r} is used by agent(s) {', '.join(sorted(agents))}; "
            "change their model settings first"
        )
    await session.delete(integration)
    await session.flush()
    return integration


async def read_secret(
    session: AsyncSession | None, vault: Vault, workspace: Workspace, integration: Integration, field: str
) -> str:
    """Decrypt one secret for the code that calls the provider. Never show the result to anyone.

    ``session`` is accepted (and may be None) so callers don't change when keys move to an
    external key service that needs a lookup.
    """
    del session
    if integration.workspace_id != workspace.id:
        raise VaultError(f"integration {integration.name!r} does not belong to workspace {workspace.slug!r}")
    schema = provider_schema(integration.provider)
    if field not in schema.secret_fields:
        raise InvalidInput(
            f"field: {integration.provider} integrations have secrets {', '.join(schema.secret_fields)}, "
            f"not {field[:60]!r}"
        )
    token = (integration.secrets or {}).get(field)
    if token is None:
        raise NotFound(f"integration {integration.name!r} has no {field} set")
    return vault.decrypt(workspace, integration.id, field, token)


def describe_integration(integration: Integration) -> dict[str, Any]:
    """The safe view for people and APIs: public fields, ``has_<secret>`` and ``<secret>_last4``."""
    schema = PROVIDERS.get(integration.provider)
    public = integration.public or {}
    hints = public.get(LAST4_KEY, {})
    stored = integration.secrets or {}
    view: dict[str, Any] = {"id": integration.id, "provider": integration.provider, "name": integration.name}
    public_fields = schema.public_fields if schema else tuple(k for k in public if not k.startswith("_"))
    for field in public_fields:
        view[field] = public.get(field)
    secret_fields = schema.secret_fields if schema else tuple(stored)
    for field in secret_fields:
        view[f"has_{field}"] = field in stored
        view[f"{field}_last4"] = hints.get(field) if field in stored else None
    view["created_at"] = integration.created_at.isoformat() if integration.created_at else None
    view["updated_at"] = integration.updated_at.isoformat() if integration.updated_at else None
    return view


__all__ = [
    "PROVIDERS",
    "ProviderSchema",
    "provider_schema",
    "connect_integration",
    "list_integrations",
    "find_integration",
    "get_integration",
    "remove_integration",
    "read_secret",
    "describe_integration",
    "last4",
]
