"""People who sign in: users, roles, one-time links, passwords and sessions, on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from callable_agents.core.errors import Conflict, InvalidInput, NotFound
from callable_agents.core.models import User, UserLink, UserSession, utcnow
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.users import (
    change_role,
    create_link,
    create_user,
    end_session,
    find_sign_in,
    hash_password,
    list_invitations,
    list_users,
    password_matches,
    read_link,
    read_session,
    redeem_link,
    remove_user,
    start_session,
)
from callable_agents.core.store.workspaces import create_workspace

PASSWORD = "correct horse battery"


async def _workspace(runtime: Runtime, name: str) -> str:
    async with runtime.db.session() as session:
        return (await create_workspace(session, runtime.vault, name)).id


async def test_an_owner_link_creates_the_owner_once_and_the_password_signs_in(runtime: Runtime) -> None:
    workspace_id = await _workspace(runtime, "Bella")
    async with runtime.db.session() as session:
        token = await create_link(session, workspace_id, purpose="owner")
    async with runtime.db.session() as session:
        view = await read_link(session, token)
        assert (view.purpose, view.role, view.workspace_name) == ("owner", "owner", "Bella")
        user = await redeem_link(session, token, email="Ann@Example.com", name="Ann", password_hash=hash_password(PASSWORD))
        assert (user.email, user.role) == ("ann@example.com", "owner")
    async with runtime.db.session() as session:
        with pytest.raises(NotFound, match="unknown, used or expired"):
            await read_link(session, token)
        # Only the token's hash is stored.
        stored = (await session.scalars(select(UserLink.token_hash))).all()
        assert token not in stored
        assert (await find_sign_in(session, "ann@example.com", PASSWORD)) is not None
        assert (await find_sign_in(session, "ann@example.com", "wrong password!")) is None
        assert (await find_sign_in(session, "nobody@example.com", PASSWORD)) is None
        assert (await find_sign_in(session, "not an email", PASSWORD)) is None


async def test_an_invitation_joins_its_address_with_its_role(runtime: Runtime) -> None:
    workspace_id = await _workspace(runtime, "Bella")
    async with runtime.db.session() as session:
        owner = await create_user(session, workspace_id, email="ann@example.com", role="owner")
        token = await create_link(session, workspace_id, purpose="invite", email="bo@example.com", created_by=owner.id)
        assert [link.email for link in await list_invitations(session, workspace_id)] == ["bo@example.com"]
        with pytest.raises(Conflict, match="already a member"):
            await create_link(session, workspace_id, purpose="invite", email="ann@example.com")
        with pytest.raises(InvalidInput, match="email: expected an e-mail"):
            await create_link(session, workspace_id, purpose="invite", email="bo")
    async with runtime.db.session() as session:
        # The invited address is kept whatever the form says.
        user = await redeem_link(session, token, email="mallory@example.com", name="Bo", password_hash=hash_password(PASSWORD))
        assert (user.email, user.role) == ("bo@example.com", "member")
        assert await list_invitations(session, workspace_id) == []


async def test_an_expired_link_is_refused(runtime: Runtime) -> None:
    workspace_id = await _workspace(runtime, "Bella")
    async with runtime.db.session() as session:
        token = await create_link(session, workspace_id, purpose="owner")
        await session.execute(update(UserLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    async with runtime.db.session() as session:
        with pytest.raises(NotFound, match="expired"):
            await read_link(session, token)


async def test_the_last_owner_stays(runtime: Runtime) -> None:
    workspace_id = await _workspace(runtime, "Bella")
    async with runtime.db.session() as session:
        owner = await create_user(session, workspace_id, email="ann@example.com", role="owner")
        member = await create_user(session, workspace_id, email="bo@example.com")
        with pytest.raises(Conflict, match="last owner cannot be removed"):
            await remove_user(session, workspace_id, owner.id)
        with pytest.raises(Conflict, match="last owner cannot become a member"):
            await change_role(session, workspace_id, owner.id, "member")
        with pytest.raises(InvalidInput, match="role: expected one of owner, member"):
            await change_role(session, workspace_id, member.id, "admin")
        await change_role(session, workspace_id, member.id, "owner")
        await remove_user(session, workspace_id, owner.id)
        assert [user.email for user in await list_users(session, workspace_id)] == ["bo@example.com"]


async def test_sessions_end_on_sign_out_and_with_their_user_and_stay_in_their_workspace(runtime: Runtime) -> None:
    bella = await _workspace(runtime, "Bella")
    other = await _workspace(runtime, "Other")
    async with runtime.db.session() as session:
        owner = await create_user(session, bella, email="ann@example.com", role="owner")
        member = await create_user(session, bella, email="bo@example.com")
        token = await start_session(session, member)
        owner_token = await start_session(session, owner)
        with pytest.raises(NotFound):
            await remove_user(session, other, member.id)  # another workspace's id
    async with runtime.db.session() as session:
        signed_in = await read_session(session, token)
        assert signed_in is not None and (signed_in.workspace_id, signed_in.role) == (bella, "member")
        assert token not in (await session.scalars(select(UserSession.id))).all()
        await remove_user(session, bella, member.id)
    async with runtime.db.session() as session:
        assert await read_session(session, token) is None
        assert await read_session(session, owner_token) is not None
        await end_session(session, owner_token)
    async with runtime.db.session() as session:
        assert await read_session(session, owner_token) is None
        assert await read_session(session, "") is None


def test_passwords_are_argon2id_and_checked_for_length() -> None:
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    assert password_matches(hashed, PASSWORD) and not password_matches(hashed, PASSWORD + "x")
    assert not password_matches(None, PASSWORD) and not password_matches("garbage", PASSWORD)
    with pytest.raises(InvalidInput, match="password: expected at least 10 characters"):
        hash_password("short")


async def test_user_repr_carries_no_hash(runtime: Runtime) -> None:
    workspace_id = await _workspace(runtime, "Bella")
    async with runtime.db.session() as session:
        user = await create_user(session, workspace_id, email="ann@example.com", password_hash=hash_password(PASSWORD))
        assert "argon2" not in repr(user) and isinstance(user, User)


async def test_signing_in_deletes_the_users_expired_sessions(runtime: Runtime) -> None:
    workspace_id = await _workspace(runtime, "Bella")
    async with runtime.db.session() as session:
        user = await create_user(session, workspace_id, email="ann@example.com")
        old = await start_session(session, user)
        await session.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    async with runtime.db.session() as session:
        assert await read_session(session, old) is None
        await start_session(session, user)
    async with runtime.db.session() as session:
        assert len((await session.scalars(select(UserSession.id))).all()) == 1
