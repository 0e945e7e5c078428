"""Workspaces and their admin API keys.

An API key is shown once, at creation; only its SHA-256 is stored. The key's public prefix
finds the row, so authentication is one indexed lookup plus a constant-time compare.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.core.errors import Conflict, InvalidInput, NotFound
from callable_agents.core.models import ApiKey, Workspace, utcnow

if TYPE_CHECKING:
    from callable_agents.core.store.vault import Vault

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
API_KEY_PREFIX = "ca_"


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:63] or "workspace"


def check_slug(slug: str, field: str = "slug") -> str:
    if not SLUG_PATTERN.match(slug):
        raise InvalidInput(f"{field}: expected lowercase letters, digits and dashes (1-63 chars), got {slug!r}")
    return slug


async def create_workspace(session: AsyncSession, vault: Vault, name: str, slug: str | None = None) -> Workspace:
    """Create a workspace with its own data key (wrapped by the master key)."""
    name = name.strip()
    if not name:
        raise InvalidInput("name: expected a non-empty workspace name")
    slug = check_slug(slug or slugify(name))
    if await session.scalar(select(Workspace.id).where(Workspace.slug == slug)):
        raise Conflict(f"workspace {slug!r} already exists")
    workspace = Workspace(name=name, slug=slug)
    session.add(workspace)
    await session.flush()
    workspace.wrapped_key, workspace.key_id = vault.new_wrapped_key(workspace.id)
    await session.flush()
    return workspace


async def ensure_workspace(session: AsyncSession, vault: Vault, name: str, slug: str) -> Workspace:
    """The workspace with this slug, created if missing (idempotent, for the demo and apply)."""
    existing = await session.scalar(select(Workspace).where(Workspace.slug == slug))
    return existing or await create_workspace(session, vault, name, slug)


async def get_workspace(session: AsyncSession, slug_or_id: str) -> Workspace:
    workspace = await session.scalar(
        select(Workspace).where(or_(Workspace.slug == slug_or_id, Workspace.id == slug_or_id))
    )
    if workspace is None:
        raise NotFound(f"workspace {slug_or_id!r} not found: `callable workspace list` shows the workspaces")
    return workspace


async def list_workspaces(session: AsyncSession) -> Sequence[Workspace]:
    return (await session.scalars(select(Workspace).order_by(Workspace.created_at))).all()


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(session: AsyncSession, workspace_id: str, name: str) -> tuple[ApiKey, str]:
    """Create an admin API key; returns the row and the key itself (shown once, never stored)."""
    prefix = secrets.token_hex(6)
    key = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(workspace_id=workspace_id, name=name or "default", prefix=prefix, key_hash=_hash_key(key))
    session.add(row)
    await session.flush()
    return row, key


def describe_api_key(row: ApiKey) -> dict[str, Any]:
    """What is known about a key without the key: its prefix, label, dates, state."""
    return {
        "id": row.id,
        "prefix": row.prefix,
        "name": row.name,
        "status": "revoked" if row.revoked_at else "active",
        "created_at": row.created_at.isoformat(timespec="seconds") if row.created_at else None,
        "last_used_at": row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else None,
        "revoked_at": row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else None,
    }


async def authenticate_api_key(session: AsyncSession, key: str) -> ApiKey | None:
    """The live key row for ``key``, or None."""
    parts = key.split("_")
    if len(parts) < 3 or not key.startswith(API_KEY_PREFIX):
        return None
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1], ApiKey.revoked_at.is_(None)))
    if row is None or not hmac.compare_digest(row.key_hash, _hash_key(key)):
        return None
    row.last_used_at = utcnow()
    return row


async def list_api_keys(session: AsyncSession, workspace_id: str) -> Sequence[ApiKey]:
    return (
        await session.scalars(
            select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.created_at, ApiKey.id)
        )
    ).all()


async def revoke_api_key(session: AsyncSession, workspace_id: str, key: str) -> ApiKey:
    """Revoke the workspace's key named by its prefix (as ``apikey list`` shows it), id or name.

    A name shared by several keys is refused (revoke by prefix); revoking a revoked key is
    an error that says so. The key stops working on the next request.
    """
    from callable_agents.core.errors import Conflict, InvalidInput, NotFound

    wanted = key.strip()
    if wanted.startswith(API_KEY_PREFIX):  # the whole key pasted: its prefix part finds it
        parts = wanted.split("_")
        wanted = parts[1] if len(parts) >= 3 else wanted
    rows = [
        row for row in await list_api_keys(session, workspace_id) if wanted in (row.prefix, row.id, row.name)
    ]
    if not rows:
        raise NotFound(f"KEY: no API key {key[:24]!r} in this workspace; `callable apikey list` shows the keys")
    if len(rows) > 1:
        live = [row for row in rows if row.revoked_at is None]
        if len(live) != 1:
            prefixes = ", ".join(row.prefix for row in rows)
            raise InvalidInput(f"KEY: several keys are named {wanted!r} (prefixes {prefixes}); revoke one by its prefix")
        rows = live
    row = rows[0]
    if row.revoked_at is not None:
        raise Conflict(f"KEY: API key {row.prefix} ({row.name}) was already revoked on {row.revoked_at:%Y-%m-%d %H:%M} UTC")
    row.revoked_at = utcnow()
    await session.flush()
    return row
