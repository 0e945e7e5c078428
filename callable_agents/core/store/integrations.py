"""Integrations: a workspace's provider accounts, with write-only secrets.

Each provider (a :class:`~callable_agents.core.contracts.integrations.ProviderType`, registered
by a plugin through ``register_integration_providers()``; core registers ``openai`` and ``http``
the same way, see :mod:`callable_agents.core.store.providers`) has a schema: *public* fields, stored in clear in ``Integration.public``, and
*secret* fields, stored as vault tokens in ``Integration.secrets`` (see
:mod:`callable_agents.core.store.vault`). Secrets go in through :func:`connect_integration` and come
out only through :func:`read_secret`, for the code that calls the provider; every view meant
for people (:func:`describe_integration`) shows ``has_<field>`` and at most the last four
characters, which are kept in clear at write time (``public["_last4"]``) so listing never
decrypts anything.

:func:`connect_checked` is the one "check then store" path (CLI, admin API, dashboard): the
provider's ``verify`` runs on the integration as it would be stored, before it is written and
with no transaction open, so credentials the provider refuses are never stored.

Every function takes the workspace and filters by it: one workspace never sees another's rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.core.contracts.integrations import ProviderType, StoredIntegration
from callable_agents.core.db import find_named, scoped
from callable_agents.core.errors import CallableError, Conflict, InvalidInput, NotFound, VaultError
from callable_agents.core.models import Agent, Channel, Integration, Workspace, new_id
from callable_agents.core.store.vault import Vault

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
LAST4_KEY = "_last4"
# Below this length the last four characters would give away too much of the secret.
MIN_CHARS_FOR_LAST4 = 12


ProviderTypes = Mapping[str, ProviderType]


def default_providers() -> ProviderTypes:
    """The providers of the built-in plugins (and core's own), for callers without a runtime.

    Code that has a :class:`~callable_agents.core.runtime.Runtime` passes
    ``runtime.plugins.providers`` instead, which adds the third-party plugins' providers.
    """
    global _DEFAULT_PROVIDERS
    if _DEFAULT_PROVIDERS is None:
        from callable_agents.core.plugins import load_plugins

        _DEFAULT_PROVIDERS = dict(load_plugins(autoload=False).providers.types)
    return _DEFAULT_PROVIDERS


_DEFAULT_PROVIDERS: dict[str, ProviderType] | None = None


def provider_schema(provider: str, providers: ProviderTypes | None = None) -> ProviderType:
    known = default_providers() if providers is None else providers
    schema = known.get(provider)
    if schema is None:
        raise InvalidInput(f"provider: expected one of {', '.join(sorted(known))}, got {str(provider)[:40]!r}")
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
    providers: ProviderTypes | None = None,
) -> Integration:
    """Create the integration ``name``, or update it if the workspace already has one.

    On update, public fields given replace the stored ones (a ``None`` value clears an optional
    one) and the others are kept; secrets given replace the stored ones and secrets left out
    (or ``None``) are kept, so changing one key does not require re-entering the others. A new
    integration needs every required secret. The provider of an existing integration cannot
    change. Secrets are encrypted before anything is stored and never appear in errors.
    """
    schema = provider_schema(provider, providers)
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
    session: AsyncSession | None,
    vault: Vault,
    workspace: Workspace,
    integration: Integration,
    field: str,
    providers: ProviderTypes | None = None,
) -> str:
    """Decrypt one secret for the code that calls the provider. Never show the result to anyone.

    ``session`` is accepted (and may be None) so callers don't change when keys move to an
    external key service that needs a lookup.
    """
    del session
    if integration.workspace_id != workspace.id:
        raise VaultError(f"integration {integration.name!r} does not belong to workspace {workspace.slug!r}")
    schema = provider_schema(integration.provider, providers)
    if field not in schema.secret_fields:
        raise InvalidInput(
            f"field: {integration.provider} integrations have secrets {', '.join(schema.secret_fields)}, "
            f"not {field[:60]!r}"
        )
    token = (integration.secrets or {}).get(field)
    if token is None:
        raise NotFound(f"integration {integration.name!r} has no {field} set")
    return vault.decrypt(workspace, integration.id, field, token)


def describe_integration(integration: Integration, providers: ProviderTypes | None = None) -> dict[str, Any]:
    """The safe view for people and APIs: public fields, ``has_<secret>`` and ``<secret>_last4``."""
    schema = (default_providers() if providers is None else providers).get(integration.provider)
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


# -- what plugins receive ------------------------------------------------------------------


@dataclass(frozen=True)
class _Sealed:
    """What decrypting needs, kept out of plugins' sight: the vault tokens and the workspace key."""

    tokens: Mapping[str, str]
    workspace: WorkspaceKey


@dataclass(frozen=True)
class WorkspaceKey:
    """The part of a workspace the vault needs to decrypt its secrets (no ORM row)."""

    id: str
    slug: str
    wrapped_key: str | None
    key_id: str | None


def stored_integration(integration: Integration, workspace: Workspace) -> StoredIntegration:
    """The read-only snapshot of ``integration`` handed to plugins."""
    if integration.workspace_id != workspace.id:
        raise VaultError(f"integration {integration.name!r} does not belong to workspace {workspace.slug!r}")
    public = {k: v for k, v in (integration.public or {}).items() if not k.startswith("_")}
    tokens = dict(integration.secrets or {})
    return StoredIntegration(
        id=integration.id,
        workspace_id=integration.workspace_id,
        provider=integration.provider,
        name=integration.name,
        public=public,
        secret_fields=frozenset(tokens),
        updated_at=integration.updated_at,
        sealed=_Sealed(tokens, WorkspaceKey(workspace.id, workspace.slug, workspace.wrapped_key, workspace.key_id)),
    )


def read_integration_secret(runtime: Runtime, integration: StoredIntegration, field: str) -> str:
    """Decrypt one secret of a snapshot, for the code that calls the provider. Never show it.

    No database access: the snapshot carries the vault tokens and the workspace's wrapped key.
    """
    sealed = integration.sealed
    if not isinstance(sealed, _Sealed):
        raise VaultError(f"integration {integration.name!r}: expected a snapshot made by core (stored_integration)")
    schema = runtime.plugins.providers.types.get(integration.provider) or provider_schema(integration.provider)
    if field not in schema.secret_fields:
        raise InvalidInput(
            f"field: {integration.provider} integrations have secrets {', '.join(schema.secret_fields)}, "
            f"not {field[:60]!r}"
        )
    token = sealed.tokens.get(field)
    if token is None:
        raise NotFound(f"integration {integration.name!r} has no {field} set")
    return runtime.vault.decrypt(sealed.workspace, integration.id, field, token)


async def read_named_integration(
    runtime: Runtime, workspace_id: str, name_or_id: str, *, provider: str | None = None
) -> StoredIntegration:
    """The workspace's integration ``name_or_id`` as a snapshot (one read); NotFound says how to list them.

    With ``provider``, an integration of another provider is refused with a clear message.
    """
    async with runtime.db.session() as session:
        integration = await get_integration(session, workspace_id, name_or_id)
        workspace = await session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound(f"workspace {workspace_id!r} not found")
    if provider is not None and integration.provider != provider:
        raise InvalidInput(
            f"integration {integration.name!r} is a {integration.provider} integration, expected {provider}"
        )
    return stored_integration(integration, workspace)


async def read_named_integrations(
    runtime: Runtime, workspace_id: str, names: Sequence[str]
) -> dict[str, StoredIntegration | NotFound]:
    """Several of the workspace's integrations by name or id, as snapshots, in one session.

    A name that matches nothing maps to the NotFound that says so (callers name the
    reference that used it); an unknown workspace raises NotFound.
    """
    found: dict[str, StoredIntegration | NotFound] = {}
    async with runtime.db.session() as session:
        workspace = await session.get(Workspace, workspace_id)
        if workspace is None:
            raise NotFound(f"workspace {workspace_id!r} not found")
        for name in names:
            try:
                found[name] = stored_integration(await get_integration(session, workspace_id, name), workspace)
            except NotFound as exc:
                found[name] = exc
    return found


async def read_provider_integrations(runtime: Runtime, workspace_id: str, provider: str) -> list[StoredIntegration]:
    """The workspace's integrations of one provider, by name, as snapshots."""
    async with runtime.db.session() as session:
        rows = await list_integrations(session, workspace_id, provider=provider)
        workspace = await session.get(Workspace, workspace_id) if rows else None
    if workspace is None:
        return []
    return [stored_integration(row, workspace) for row in rows]


# -- check, then store ----------------------------------------------------------------------


# What a provider's "could not check right now" error carries (bad gateway, unavailable,
# timeout), as opposed to credentials it refused.
UNREACHABLE_STATUSES = (502, 503, 504)


class ProviderUnreachable(InvalidInput):
    """The provider could not be asked to check the credentials (offline, DNS, its outage);
    nothing was stored. Callers add how to store without the check (``--no-verify``,
    ``"verify": false``). A 422 like a refusal (the credentials could not be accepted), whose
    message says why and that trying again may work; the provider's own 5xx stays in the message."""


@dataclass(frozen=True)
class ConnectedIntegration:
    view: dict[str, Any]  # describe_integration's safe view
    account: Mapping[str, Any] | None  # what the provider's verify said, if it ran


class _Rehearsed(Exception):
    """Ends a rehearsal's transaction (rolled back) with the snapshot it made."""

    def __init__(self, snapshot: StoredIntegration) -> None:
        super().__init__("rehearsal")
        self.snapshot = snapshot


async def connect_checked(
    runtime: Runtime,
    workspace: Workspace,
    *,
    provider: str,
    name: str,
    public: Mapping[str, Any],
    secrets: Mapping[str, str | None],
    verify: bool = True,
) -> ConnectedIntegration:
    """Validate, encrypt and (unless ``verify`` is False) check the credentials with the provider,
    then commit. The one path the CLI, the admin API and the dashboard take.

    The provider is asked with no transaction open: the integration as it would be stored
    is made in a transaction that is rolled back at once (a rehearsal), checked, and only
    then written. A write transaction held across the provider's answer would, on SQLite,
    hold the database's one write lock, and every webhook would wait for the provider. When
    the provider refuses, its error propagates and nothing is stored. ``verify=False``
    (``--no-verify``, ``"verify": false``) is for offline set-ups and tests. Providers
    without ``verify`` are stored as they are. A provider that cannot be reached raises
    :class:`ProviderUnreachable`.
    """
    providers = runtime.plugins.providers.types
    schema = provider_schema(provider, providers)

    async def write(session: AsyncSession) -> Integration:
        return await connect_integration(
            session,
            runtime.vault,
            await session.merge(workspace),
            provider=provider,
            name=name,
            public=public,
            secrets=secrets,
            providers=providers,
        )

    account: Mapping[str, Any] | None = None
    if verify and schema.verify is not None:
        try:
            async with runtime.db.session() as session:
                row = await write(session)
                owner = await session.get(Workspace, row.workspace_id)
                assert owner is not None  # connect_integration just used it
                raise _Rehearsed(stored_integration(row, owner))
        except _Rehearsed as rehearsal:
            snapshot = rehearsal.snapshot
        try:
            account = await schema.verify(runtime, snapshot)
        except CallableError as exc:
            if exc.status_code not in UNREACHABLE_STATUSES:
                raise  # refused (a 4xx naming the reason): nothing is stored
            raise ProviderUnreachable(f"{exc}; nothing was stored") from None
    async with runtime.db.session() as session:
        view = describe_integration(await write(session), providers)
    return ConnectedIntegration(view, account)


__all__ = [
    "ConnectedIntegration",
    "ProviderUnreachable",
    "ProviderType",
    "ProviderTypes",
    "StoredIntegration",
    "WorkspaceKey",
    "connect_checked",
    "connect_integration",
    "default_providers",
    "describe_integration",
    "find_integration",
    "get_integration",
    "last4",
    "list_integrations",
    "provider_schema",
    "read_integration_secret",
    "read_named_integration",
    "read_named_integrations",
    "read_provider_integrations",
    "read_secret",
    "remove_integration",
    "stored_integration",
]
