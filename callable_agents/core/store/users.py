"""People who sign in: users with a role, one-time links, passwords and sessions.

A user belongs to one workspace with the role ``owner`` or ``member`` (owners manage
members and API keys). A person gets in through a one-time link: the first owner's
(``callable demo``/``serve`` print it, ``callable user create`` makes one) or an
invitation; the link's page sets their password. Passwords are hashed with Argon2id
(argon2-cffi); a session is a random token in an HttpOnly cookie whose SHA-256 is the
session row's id, so the database holds nothing that signs anybody in.

Every function takes the workspace it acts in; the only unscoped lookups are by an
unguessable token (a link's, a session's) or by e-mail at sign-in, documented where they are.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.core.errors import Conflict, InvalidInput, NotFound
from callable_agents.core.models import User, UserLink, UserSession, Workspace, utcnow

ROLES = ("owner", "member")
LINK_TTL = timedelta(days=3)
SESSION_TTL = timedelta(days=14)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$")

_hasher = PasswordHasher()
# Hashing a password nobody has costs what a real check costs, so an unknown e-mail and a
# wrong password take the same time at sign-in.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_email(value: str, field: str = "email") -> str:
    email = value.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidInput(f"{field}: expected an e-mail address like name@example.com", field=field)
    return email


def check_role(value: str, field: str = "role") -> str:
    if value not in ROLES:
        raise InvalidInput(f"{field}: expected one of {', '.join(ROLES)}", field=field)
    return value


def check_password(value: str, field: str = "password") -> str:
    if len(value) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"{field}: expected at least {MIN_PASSWORD_LENGTH} characters", field=field)
    if len(value) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"{field}: expected at most {MAX_PASSWORD_LENGTH} characters", field=field)
    return value


def hash_password(password: str) -> str:
    """Argon2id, with argon2-cffi's current parameters. Slow on purpose (~50 ms): call it
    off the event loop (``asyncio.to_thread``) on the request path."""
    return _hasher.hash(check_password(password))


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` is the one hashed; as slow for a missing hash as for a wrong one."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


# -- users -------------------------------------------------------------------------------


async def list_users(session: AsyncSession, workspace_id: str) -> Sequence[User]:
    return (
        await session.scalars(select(User).where(User.workspace_id == workspace_id).order_by(User.created_at, User.id))
    ).all()


async def get_user(session: AsyncSession, workspace_id: str, user_id: str) -> User:
    user = await session.scalar(select(User).where(User.workspace_id == workspace_id, User.id == user_id))
    if user is None:
        raise NotFound(f"user: no user {user_id[:40]!r} in this workspace")
    return user


async def create_user(
    session: AsyncSession,
    workspace_id: str,
    *,
    email: str,
    name: str = "",
    role: str = "member",
    password_hash: str | None = None,
) -> User:
    """Add a person to the workspace (a taken e-mail is a 409 naming it)."""
    email = check_email(email)
    check_role(role)
    if len(name) > 200:
        raise InvalidInput("name: expected at most 200 characters", field="name")
    taken = await session.scalar(select(User.id).where(User.workspace_id == workspace_id, User.email == email))
    if taken is not None:
        raise Conflict(f"email: {email} is already a member of this workspace")
    user = User(workspace_id=workspace_id, email=email, name=name.strip(), role=role, password_hash=password_hash)
    session.add(user)
    await session.flush()
    return user


async def _owner_count(session: AsyncSession, workspace_id: str) -> int:
    count = await session.scalar(
        select(func.count()).select_from(User).where(User.workspace_id == workspace_id, User.role == "owner")
    )
    return int(count or 0)


async def change_role(session: AsyncSession, workspace_id: str, user_id: str, role: str) -> User:
    """Make a member an owner or an owner a member; the last owner stays an owner."""
    check_role(role)
    user = await get_user(session, workspace_id, user_id)
    if user.role == "owner" and role != "owner" and await _owner_count(session, workspace_id) <= 1:
        raise Conflict("role: the workspace's last owner cannot become a member; make someone else an owner first")
    user.role = role
    await session.flush()
    return user


async def remove_user(session: AsyncSession, workspace_id: str, user_id: str) -> User:
    """Remove a person (their sessions end with them); the last owner cannot be removed."""
    user = await get_user(session, workspace_id, user_id)
    if user.role == "owner" and await _owner_count(session, workspace_id) <= 1:
        raise Conflict("user: the workspace's last owner cannot be removed; make someone else an owner first")
    await session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    await session.delete(user)
    await session.flush()
    return user


async def has_owner(session: AsyncSession, workspace_id: str) -> bool:
    return await _owner_count(session, workspace_id) > 0


# -- one-time links ----------------------------------------------------------------------


@dataclass(frozen=True)
class LinkView:
    """What a link's page shows before the person sets a password."""

    link_id: str
    workspace_id: str
    workspace_name: str
    purpose: str  # owner | invite
    email: str
    role: str


def link_path(token: str) -> str:
    """Where a one-time link's page is served (the dashboard's ``/dashboard/welcome/...``)."""
    return f"/dashboard/welcome/{token}"


async def create_link(
    session: AsyncSession,
    workspace_id: str,
    *,
    purpose: str,
    email: str = "",
    role: str = "member",
    created_by: str | None = None,
) -> str:
    """A one-time link's token (shown once; only its hash is kept): ``owner`` creates the
    workspace's owner, ``invite`` lets ``email`` join with ``role``."""
    if purpose not in ("owner", "invite"):
        raise InvalidInput("purpose: expected owner or invite", field="purpose")
    if purpose == "invite":
        email = check_email(email)
        check_role(role)
        taken = await session.scalar(select(User.id).where(User.workspace_id == workspace_id, User.email == email))
        if taken is not None:
            raise Conflict(f"email: {email} is already a member of this workspace")
    else:
        role = "owner"
    token = secrets.token_urlsafe(32)
    session.add(
        UserLink(
            workspace_id=workspace_id,
            purpose=purpose,
            email=email,
            role=role,
            token_hash=_token_hash(token),
            created_by=created_by,
            expires_at=utcnow() + LINK_TTL,
        )
    )
    await session.flush()
    return token


async def list_invitations(session: AsyncSession, workspace_id: str) -> Sequence[UserLink]:
    """Invitations not yet accepted and not expired."""
    return (
        await session.scalars(
            select(UserLink)
            .where(
                UserLink.workspace_id == workspace_id,
                UserLink.purpose == "invite",
                UserLink.used_at.is_(None),
                UserLink.expires_at > utcnow(),
            )
            .order_by(UserLink.created_at)
        )
    ).all()


async def revoke_invitation(session: AsyncSession, workspace_id: str, link_id: str) -> None:
    link = await session.scalar(
        select(UserLink).where(UserLink.workspace_id == workspace_id, UserLink.id == link_id, UserLink.purpose == "invite")
    )
    if link is None:
        raise NotFound(f"invitation: no open invitation {link_id[:40]!r} in this workspace")
    await session.delete(link)
    await session.flush()


async def _live_link(session: AsyncSession, token: str) -> UserLink:
    # Unscoped by design: the token is the unguessable key of the link.
    link = await session.scalar(select(UserLink).where(UserLink.token_hash == _token_hash(token)))
    if link is None or link.used_at is not None or link.expires_at <= utcnow():
        raise NotFound("link: this link is unknown, used or expired; ask the workspace's owner for a new one")
    return link


async def read_link(session: AsyncSession, token: str) -> LinkView:
    link = await _live_link(session, token)
    workspace = await session.get(Workspace, link.workspace_id)
    assert workspace is not None  # the link is deleted with its workspace
    return LinkView(link.id, link.workspace_id, workspace.name, link.purpose, link.email, link.role)


async def redeem_link(session: AsyncSession, token: str, *, email: str, name: str, password_hash: str) -> User:
    """Use a link once: create its owner or member with the hashed password."""
    link = await _live_link(session, token)
    if link.purpose == "invite":
        email = link.email  # an invitation is for the address it was sent to
    user = await create_user(
        session, link.workspace_id, email=email, name=name, role=link.role, password_hash=password_hash
    )
    link.used_at = utcnow()
    await session.flush()
    return user


# -- sign-in and sessions ----------------------------------------------------------------


async def find_sign_in(session: AsyncSession, email: str, password: str) -> User | None:
    """The user with this e-mail and password, or None (the same answer, in the same time,
    for an unknown e-mail as for a wrong password). Unscoped by design: a person signs in
    before a workspace is known; the same address in several workspaces signs in to the
    first one created whose password matches. Argon2 runs off the event loop."""
    try:
        email = check_email(email)
    except InvalidInput:
        email = ""
    users = (await session.scalars(select(User).where(User.email == email).order_by(User.created_at))).all() if email else []
    hashes = [user.password_hash for user in users] or [None]
    matched = await asyncio.to_thread(_first_match, hashes, password)
    return users[matched] if matched is not None and users else None


def _first_match(hashes: list[str | None], password: str) -> int | None:
    for index, password_hash in enumerate(hashes):
        if password_matches(password_hash, password):
            return index
    return None


@dataclass(frozen=True)
class SignedIn:
    """Who a request's session cookie belongs to, and their CSRF token."""

    user_id: str
    email: str
    name: str
    role: str
    workspace_id: str
    workspace_name: str
    workspace_slug: str
    csrf_token: str

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def display_name(self) -> str:
        return self.name or self.email


async def start_session(session: AsyncSession, user: User) -> str:
    """A new session for ``user``; returns the cookie's token (only its hash is stored).
    The user's expired sessions are deleted on the way."""
    await session.execute(delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= utcnow()))
    token = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            id=_token_hash(token),
            workspace_id=user.workspace_id,
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=utcnow() + SESSION_TTL,
        )
    )
    user.last_signed_in_at = utcnow()
    await session.flush()
    return token


async def read_session(session: AsyncSession, token: str) -> SignedIn | None:
    """Who the cookie's token signs in, or None (unknown, expired, or the user was removed)."""
    if not token or len(token) > 200:
        return None
    row = await session.execute(
        select(UserSession, User, Workspace)
        .join(User, User.id == UserSession.user_id)
        .join(Workspace, Workspace.id == UserSession.workspace_id)
        .where(UserSession.id == _token_hash(token), UserSession.expires_at > utcnow())
    )
    found = row.first()
    if found is None:
        return None
    user_session, user, workspace = found
    return SignedIn(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        workspace_id=workspace.id,
        workspace_name=workspace.name,
        workspace_slug=workspace.slug,
        csrf_token=user_session.csrf_token,
    )


async def end_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(UserSession).where(UserSession.id == _token_hash(token)))
