"""Sign-in, sign-out, one-time links, the CSRF check, the sign-in limit and the session cookie,
against the real server."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from sqlalchemy import select

from callable_agents.core.models import User
from callable_agents.core.store.users import create_link
from callable_agents.dashboard.account import owner_setup_links
from callable_agents.dashboard.guard import SESSION_COOKIE
from tests.dashboard.support import PASSWORD, add_member, dashboard_server, sign_in_form, signed_in_client


async def test_a_visitor_is_sent_to_sign_in_and_back_where_they_were(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        member = await add_member(server.runtime)
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.get("/dashboard/settings")
            assert response.status_code == 303
            assert response.headers["location"] == "/dashboard/sign-in?next=%2Fdashboard%2Fsettings"
            home = await client.get("/")
            assert home.status_code == 200 and 'href="/dashboard"' in home.text
            page = await client.get("/dashboard/sign-in?next=%2Fdashboard%2Fsettings")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token is not None
            signed = await client.post(
                "/dashboard/sign-in",
                data={"csrf_token": token.group(1), "email": member.email.upper(), "password": PASSWORD, "next": "/dashboard/settings"},
            )
            assert signed.status_code == 303 and signed.headers["location"] == "/dashboard/settings"
            cookie = signed.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # plain http here
            assert (await client.get("/")).headers["location"] == "/dashboard"
            assert (await client.get("/dashboard/settings")).status_code == 200


async def test_a_next_address_off_the_site_is_not_followed(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        member = await add_member(server.runtime)
        async with httpx.AsyncClient(base_url=server.url) as client:
            for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
                page = await client.get("/dashboard/sign-in")
                token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
                assert token is not None
                response = await client.post(
                    "/dashboard/sign-in",
                    data={"csrf_token": token.group(1), "email": member.email, "password": PASSWORD, "next": target},
                )
                assert response.headers["location"] == "/dashboard", target
                client.cookies.delete(SESSION_COOKIE)


async def test_wrong_credentials_say_so_keep_the_email_and_set_no_session(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        member = await add_member(server.runtime)
        async with httpx.AsyncClient(base_url=server.url) as client:
            wrong_password = await sign_in_form(client, member.email, "not the password")
            unknown = await sign_in_form(client, "nobody@example.com", PASSWORD)
            for response in (wrong_password, unknown):
                assert response.status_code == 401
                assert "The e-mail or the password is wrong." in response.text
                assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
            assert f'value="{member.email}"' in wrong_password.text
            assert "not the password" not in wrong_password.text  # the password is never sent back
            empty = await sign_in_form(client, "", "")
            assert empty.status_code == 422
            assert "email: this field is required" in empty.text and "password: this field is required" in empty.text


async def test_sign_in_without_the_form_token_is_refused(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        member = await add_member(server.runtime)
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post("/dashboard/sign-in", data={"email": member.email, "password": PASSWORD})
            assert response.status_code == 403 and "expired" in response.text
            assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_sign_in_attempts_are_limited_per_email(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        member = await add_member(server.runtime)
        async with httpx.AsyncClient(base_url=server.url) as client:
            for _ in range(10):
                assert (await sign_in_form(client, member.email, "wrong password")).status_code == 401
            limited = await sign_in_form(client, member.email, PASSWORD)  # even the right password waits
            assert limited.status_code == 429
            assert "too many sign-in attempts" in limited.text and int(limited.headers["retry-after"]) > 0
            assert SESSION_COOKIE not in limited.headers.get("set-cookie", "")


async def test_sign_out_ends_the_session_for_good(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        member = await add_member(server.runtime)
        async with signed_in_client(server, member) as client:
            cookie = client.session_cookie
            assert (await client.get("/dashboard")).status_code == 200
            assert (await client.post("/dashboard/sign-out")).status_code == 303
        async with httpx.AsyncClient(base_url=server.url, cookies={SESSION_COOKIE: cookie}) as replay:
            assert (await replay.get("/dashboard")).status_code == 303


async def test_the_session_cookie_is_signed_and_an_unsigned_or_altered_one_is_refused(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        member = await add_member(server.runtime)
        async with signed_in_client(server, member) as client:
            cookie = client.session_cookie
            token, dot, signature = cookie.rpartition(".")
            assert dot and len(token) >= 40 and len(signature) == 43  # the token, then its HMAC-SHA256
            altered = signature[:-1] + ("A" if signature[-1] != "A" else "B")
            other_token = token[:-1] + ("A" if token[-1] != "A" else "B")
            for forged in (token, f"{token}.", f"{token}.{altered}", f"{other_token}.{signature}", f".{signature}", "x" * 300):
                async with httpx.AsyncClient(base_url=server.url, cookies={SESSION_COOKIE: forged}) as replay:
                    assert (await replay.get("/dashboard")).status_code == 303, forged
            async with httpx.AsyncClient(base_url=server.url, cookies={SESSION_COOKIE: cookie}) as replay:
                assert (await replay.get("/dashboard")).status_code == 200


async def test_every_unsafe_request_needs_the_sessions_csrf_token(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        member = await add_member(server.runtime)
        other = await add_member(server.runtime, "Other", email="other@example.com")
        async with signed_in_client(server, member) as client, signed_in_client(server, other) as other_client:
            await other_client.get("/dashboard")
            for token in (None, "", "forged", other_client.csrf_token):
                data = {"name": "ci"} if token is None else {"name": "ci", "csrf_token": token}
                response = await client.post("/dashboard/settings/keys", data, csrf=False)
                assert response.status_code == 403, token
                assert "csrf_token" in response.text
            header = await client.http.post(
                "/dashboard/settings/keys", data={"name": "ci"}, headers={"X-CSRF-Token": "forged"}
            )
            assert header.status_code == 403
            await client.get("/dashboard")
            ok = await client.http.post(
                "/dashboard/settings/keys", data={"name": "ci"}, headers={"X-CSRF-Token": client.csrf_token}
            )
            assert ok.status_code == 200 and "shown once" in ok.text


async def test_an_owner_link_creates_the_owner_and_signs_them_in(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        async with server.runtime.db.session() as session:
            from callable_agents.core.store.workspaces import create_workspace

            await create_workspace(session, server.runtime.vault, "Bella's Bakery", "bella")
        [(workspace_name, path)] = await owner_setup_links(server.runtime)
        assert workspace_name == "Bella's Bakery"
        async with httpx.AsyncClient(base_url=server.url) as client:
            page = await client.get(path)
            assert page.status_code == 200 and "Create the owner of Bella&#39;s Bakery" in page.text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token is not None
            mismatch = await client.post(
                path,
                data={"csrf_token": token.group(1), "email": "ann@example.com", "name": "Ann", "password": PASSWORD, "password_again": "different password"},
            )
            assert mismatch.status_code == 422 and "the two passwords differ" in mismatch.text
            assert 'value="ann@example.com"' in mismatch.text and PASSWORD not in mismatch.text
            short = await client.post(
                path, data={"csrf_token": token.group(1), "email": "ann@example.com", "password": "short", "password_again": "short"}
            )
            assert short.status_code == 422 and "password: expected at least 10 characters" in short.text
            created = await client.post(
                path,
                data={"csrf_token": token.group(1), "email": "ann@example.com", "name": "Ann", "password": PASSWORD, "password_again": PASSWORD},
            )
            assert created.status_code == 303 and SESSION_COOKIE in created.headers["set-cookie"]
            assert (await client.get("/dashboard")).status_code == 200
            again = await client.get(path)
            assert again.status_code == 404 and "unknown, used or expired" in again.text
        # A workspace with an owner gets no new link.
        assert await owner_setup_links(server.runtime) == []
        async with server.runtime.db.sessions() as session:
            user = await session.scalar(select(User).where(User.email == "ann@example.com"))
            assert user is not None and user.role == "owner" and user.password_hash and PASSWORD not in user.password_hash


async def test_an_invitation_keeps_its_address(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with server.runtime.db.session() as session:
            token = await create_link(session, owner.workspace_id, purpose="invite", email="bo@example.com", role="member")
        async with httpx.AsyncClient(base_url=server.url) as client:
            page = await client.get(f"/dashboard/welcome/{token}")
            assert "Join Bella&#39;s Bakery" in page.text and "bo@example.com" in page.text
            form_token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert form_token is not None
            joined = await client.post(
                f"/dashboard/welcome/{token}",
                data={"csrf_token": form_token.group(1), "email": "mallory@example.com", "name": "Bo", "password": PASSWORD, "password_again": PASSWORD},
            )
            assert joined.status_code == 303
        async with server.runtime.db.sessions() as session:
            emails = set((await session.scalars(select(User.email))).all())
        assert emails == {"owner@example.com", "bo@example.com"}
