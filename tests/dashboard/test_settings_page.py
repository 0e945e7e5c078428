"""Settings: members and invitations, API keys shown once; owners only; one workspace's
people reach nothing of another's."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from callable_agents.core.store.workspaces import create_api_key
from tests.dashboard.support import add_member, dashboard_server, signed_in_client


async def test_an_owner_invites_and_the_link_is_shown_once(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            bad = await client.post("/dashboard/settings/invitations", {"email": "not-an-address", "role": "member"})
            assert bad.status_code == 422 and "email: expected an e-mail address" in bad.text
            assert 'value="not-an-address"' in bad.text  # kept as typed
            invited = await client.post("/dashboard/settings/invitations", {"email": "bo@example.com", "role": "member"})
            assert invited.status_code == 200
            link = re.search(r"(http://[^<\"]+/dashboard/welcome/[A-Za-z0-9_-]+)", invited.text)
            assert link is not None
            listing = await client.get("/dashboard/settings")
            assert "bo@example.com" in listing.text and link.group(1) not in listing.text
            again = await client.post("/dashboard/settings/invitations", {"email": owner.email, "role": "member"})
            assert again.status_code == 422 and "already a member" in again.text


async def test_an_api_key_is_shown_once_works_and_is_revoked(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            empty = await client.post("/dashboard/settings/keys", {"name": "  "})
            assert empty.status_code == 422 and "name: this field is required" in empty.text
            created = await client.post("/dashboard/settings/keys", {"name": "CRM sync"})
            assert created.headers["cache-control"] == "no-store"
            key = re.search(r"(ca_[A-Za-z0-9_-]+)", created.text)
            assert key is not None
            async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key.group(1)}"}) as api:
                assert (await api.get("/api/v1/workspace")).status_code == 200
                listing = await client.get("/dashboard/settings")
                assert "CRM sync" in listing.text and key.group(1) not in listing.text
                key_id = re.search(r'/dashboard/settings/keys/([0-9a-f]+)/revoke', listing.text)
                assert key_id is not None
                assert (await client.post(f"/dashboard/settings/keys/{key_id.group(1)}/revoke")).status_code == 303
                assert (await api.get("/api/v1/workspace")).status_code == 401


async def test_members_see_the_team_but_cannot_manage_it(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        member = await add_member(server.runtime, email="bo@example.com", role="member")
        async with signed_in_client(server, member) as client:
            page = await client.get("/dashboard/settings")
            assert page.status_code == 200 and owner.email in page.text
            assert "Invite someone" not in page.text and "Create a key" not in page.text
            for path, data in (
                ("/dashboard/settings/invitations", {"email": "eve@example.com", "role": "owner"}),
                ("/dashboard/settings/keys", {"name": "mine"}),
                (f"/dashboard/settings/members/{owner.user_id}/remove", {}),
                (f"/dashboard/settings/members/{member.user_id}/role", {"role": "owner"}),
            ):
                response = await client.post(path, data)
                assert response.status_code == 403 and "owners" in response.text, path


async def test_another_workspaces_ids_are_not_found(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        other_owner = await add_member(server.runtime, "Other Shop", email="other@example.com")
        other_member = await add_member(server.runtime, "Other Shop", email="victim@example.com", role="member")
        async with server.runtime.db.session() as session:
            other_key, _ = await create_api_key(session, other_owner.workspace_id, "theirs")
        async with signed_in_client(server, owner) as client:
            page = await client.get("/dashboard/settings")
            assert "victim@example.com" not in page.text and "theirs" not in page.text
            for path, data in (
                (f"/dashboard/settings/members/{other_member.user_id}/remove", {}),
                (f"/dashboard/settings/members/{other_member.user_id}/role", {"role": "owner"}),
                (f"/dashboard/settings/keys/{other_key.id}/revoke", {}),
                ("/dashboard/settings/invitations/0123456789abcdef0123456789abcdef/revoke", {}),
            ):
                assert (await client.post(path, data)).status_code == 404, path
        async with server.runtime.db.sessions() as session:
            from callable_agents.core.store.users import list_users

            assert len(await list_users(session, other_owner.workspace_id)) == 2


async def test_names_are_shown_as_text(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime, name="<script>alert(1)</script>")
        async with signed_in_client(server, owner) as client:
            await client.post("/dashboard/settings/keys", {"name": "<img src=x onerror=alert(2)>"})
            page = await client.get("/dashboard/settings")
            assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
            assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(2)&gt;" in page.text


async def test_the_last_owner_cannot_leave(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            response = await client.post(f"/dashboard/settings/members/{owner.user_id}/remove")
            assert response.status_code == 409 and "last owner cannot be removed" in response.text
