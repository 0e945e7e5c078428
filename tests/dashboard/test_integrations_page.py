"""Integrations: forms generated from each provider's fields, checked with the provider before
anything is stored (the fake Twilio and fake OpenAI), secrets never in a response, rotation,
removal refused while a channel uses it; owners only; CSRF; other workspaces' ids not found."""

from __future__ import annotations

import re

from callable_agents.core.store.integrations import connect_integration, list_integrations
from callable_agents.testing.openai_server import FakeOpenAI
from callable_agents.testing.twilio_server import FakeTwilio
from tests.dashboard.support import Member, add_member, signed_in_client
from tests.dashboard.twilio_support import ACCOUNT, TOKEN, server, twilio  # noqa: F401 (fixtures)
from tests.plugins.webchat_support import LiveServer

WRONG = "typed-wrong-token-0000-ABCD"
OPENAI_KEY = "sk-test-openai-key-0123456789-LMNO"


async def names(server: LiveServer, member: Member) -> list[str]:
    async with server.runtime.db.sessions() as session:
        return [i.name for i in await list_integrations(session, member.workspace_id)]


def twilio_form(token: str = TOKEN, name: str = "twilio") -> dict[str, str]:
    return {"name": name, "public.account_sid": ACCOUNT, "public.api_key_sid": "", "secret.auth_token": token, "secret.api_key_secret": ""}


async def test_the_connect_form_is_generated_from_the_providers_fields(server: LiveServer) -> None:
    owner = await add_member(server.runtime)
    async with signed_in_client(server, owner) as client:
        page = await client.get("/dashboard/integrations?connect=twilio")
        assert page.status_code == 200
        for name, label in (("public.account_sid", "Account SID"), ("secret.auth_token", "Auth Token"),
                            ("public.api_key_sid", "API key SID"), ("secret.api_key_secret", "API key secret")):
            assert f'name="{name}"' in page.text and label in page.text
        assert re.search(r'name="secret.auth_token" type="password"', page.text)
        for provider in ("openai", "http"):
            assert f"?connect={provider}" in page.text
        unknown = await client.get("/dashboard/integrations?connect=<script>")
        assert unknown.status_code == 200 and "<script>" not in unknown.text


async def test_a_wrong_token_is_refused_nothing_is_stored_and_the_typed_values_stay(server: LiveServer, twilio: FakeTwilio) -> None:
    owner = await add_member(server.runtime)
    async with signed_in_client(server, owner) as client:
        refused = await client.post("/dashboard/integrations/connect/twilio", twilio_form(WRONG))
        assert refused.status_code == 422
        assert f"Twilio rejected the credentials for account {ACCOUNT} (HTTP 401)" in refused.text
        assert f'value="{ACCOUNT}"' in refused.text  # kept as typed
        assert WRONG not in refused.text and TOKEN not in refused.text
        assert await names(server, owner) == []

        connected = await client.post("/dashboard/integrations/connect/twilio", twilio_form())
        assert connected.status_code == 303
        listing = await client.get(connected.headers["location"])
        assert "Connected &#39;twilio&#39;: the provider accepted the credentials." in listing.text
        assert ACCOUNT in listing.text and "••••WXYZ" in listing.text and TOKEN not in listing.text
        assert await names(server, owner) == ["twilio"]
        taken = await client.post("/dashboard/integrations/connect/twilio", twilio_form())
        assert taken.status_code == 422 and "an integration named &#39;twilio&#39; exists" in taken.text


async def test_bad_fields_are_named_beside_them(server: LiveServer, twilio: FakeTwilio) -> None:
    owner = await add_member(server.runtime)
    async with signed_in_client(server, owner) as client:
        bad = await client.post("/dashboard/integrations/connect/twilio", {**twilio_form(), "public.account_sid": "AC123", "secret.auth_token": ""})
        assert bad.status_code == 422
        assert "expected &#39;AC&#39; followed by 32 hex characters" in bad.text
        assert "auth_token: this field is required" in bad.text
        assert twilio.requests == [] and await names(server, owner) == []


async def test_openai_is_checked_by_listing_models(server: LiveServer) -> None:
    owner = await add_member(server.runtime)
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        async with signed_in_client(server, owner) as client:
            form = {"name": "llm", "public.base_url": fake.base_url, "public.organization": "", "secret.api_key": "sk-wrong-key-by-hand"}
            refused = await client.post("/dashboard/integrations/connect/openai", form)
            assert refused.status_code == 422 and "refused the key (HTTP 401)" in refused.text
            assert 'aria-invalid="true"' in refused.text and "sk-wrong-key-by-hand" not in refused.text
            ok = await client.post("/dashboard/integrations/connect/openai", {**form, "secret.api_key": OPENAI_KEY})
            assert ok.status_code == 303 and await names(server, owner) == ["llm"]
            assert [r.path for r in fake.requests] == ["/v1/models", "/v1/models"]


async def test_the_http_provider_needs_no_check(server: LiveServer) -> None:
    owner = await add_member(server.runtime)
    async with signed_in_client(server, owner) as client:
        ok = await client.post("/dashboard/integrations/connect/http", {
            "name": "crm", "public.base_url": "https://crm.example.com", "secret.token": "crm-token-000000000000-abcd",
            "secret.api_key": "", "secret.signing_secret": "",
        })
        assert ok.status_code == 303
        page = await client.get("/dashboard/integrations")
        assert "••••abcd" in page.text and "crm-token" not in page.text


async def test_rotating_a_secret_is_checked_first(server: LiveServer, twilio: FakeTwilio) -> None:
    owner = await add_member(server.runtime)
    async with signed_in_client(server, owner) as client:
        await client.post("/dashboard/integrations/connect/twilio", twilio_form())
        page = await client.get("/dashboard/integrations")
        integration_id = re.search(r"/dashboard/integrations/([0-9a-f]+)/secrets", page.text).group(1)  # type: ignore[union-attr]
        refused = await client.post(f"/dashboard/integrations/{integration_id}/secrets", {"secret.auth_token": WRONG})
        assert refused.status_code == 422 and "HTTP 401" in refused.text and WRONG not in refused.text
        assert "••••WXYZ" in refused.text  # the working token stays
        empty = await client.post(f"/dashboard/integrations/{integration_id}/secrets", {"secret.auth_token": ""})
        assert empty.status_code == 422 and "enter at least one new secret" in empty.text
        new_token = "rotated-token-0000000000-NEW1"
        twilio.add_account(ACCOUNT, new_token)  # rotated in the Twilio Console first
        rotated = await client.post(f"/dashboard/integrations/{integration_id}/secrets", {"secret.auth_token": new_token})
        assert rotated.status_code == 303
        after = await client.get(rotated.headers["location"])
        assert "••••NEW1" in after.text and new_token not in after.text and "Rotated the secrets of &#39;twilio&#39;" in after.text


async def test_removing_an_integration_a_channel_uses_is_refused_naming_it(server: LiveServer) -> None:
    from tests.e2e.whatsapp_support import make_world

    world = await make_world(server.runtime)  # a workspace with integration 'twilio' used by channel 'whatsapp'
    async with server.runtime.db.session() as session:
        from callable_agents.core.store.users import create_user, hash_password

        await create_user(session, world.workspace.id, email="o@example.com", name="", role="owner", password_hash=hash_password("a long enough password"))
    owner = Member(world.workspace.id, world.workspace.slug, "", "o@example.com", "a long enough password", "owner")
    async with signed_in_client(server, owner) as client:
        refused = await client.post(f"/dashboard/integrations/{world.integration.id}/remove")
        assert refused.status_code == 409 and "is used by channel(s) whatsapp" in refused.text
        assert await names(server, owner) == ["twilio"]


async def test_an_unused_integration_is_removed(server: LiveServer) -> None:
    owner = await add_member(server.runtime)
    async with server.runtime.db.session() as session:
        from callable_agents.core.models import Workspace

        workspace = await session.get(Workspace, owner.workspace_id)
        assert workspace is not None
        row = await connect_integration(session, server.runtime.vault, workspace, provider="http", name="crm", public={}, secrets={"token": "t" * 20})
    async with signed_in_client(server, owner) as client:
        removed = await client.post(f"/dashboard/integrations/{row.id}/remove")
        assert removed.status_code == 303 and await names(server, owner) == []
        assert "Integration removed." in (await client.get(removed.headers["location"])).text


async def test_members_see_but_cannot_connect_rotate_or_remove(server: LiveServer, twilio: FakeTwilio) -> None:
    owner = await add_member(server.runtime)
    member = await add_member(server.runtime, email="bo@example.com", role="member")
    async with signed_in_client(server, owner) as client:
        await client.post("/dashboard/integrations/connect/twilio", twilio_form())
    async with signed_in_client(server, member) as client:
        page = await client.get("/dashboard/integrations")
        assert page.status_code == 200 and ACCOUNT in page.text and "Connect an account" not in page.text
        integration_id = (await names_and_ids(server, member))[0]
        for path, data in (
            ("/dashboard/integrations/connect/twilio", twilio_form(name="mine")),
            (f"/dashboard/integrations/{integration_id}/secrets", {"secret.auth_token": "x" * 20}),
            (f"/dashboard/integrations/{integration_id}/remove", {}),
        ):
            assert (await client.post(path, data)).status_code == 403, path
    assert await names(server, owner) == ["twilio"]


async def names_and_ids(server: LiveServer, member: Member) -> list[str]:
    async with server.runtime.db.sessions() as session:
        return [i.id for i in await list_integrations(session, member.workspace_id)]


async def test_without_the_csrf_token_nothing_happens(server: LiveServer, twilio: FakeTwilio) -> None:
    owner = await add_member(server.runtime)
    async with signed_in_client(server, owner) as client:
        refused = await client.post("/dashboard/integrations/connect/twilio", twilio_form(), csrf=False)
        assert refused.status_code == 403 and "csrf_token" in refused.text
        forged = await client.post("/dashboard/integrations/connect/twilio", {**twilio_form(), "csrf_token": "forged"}, csrf=False)
        assert forged.status_code == 403
    assert twilio.requests == [] and await names(server, owner) == []


async def test_another_workspaces_integrations_are_not_found(server: LiveServer) -> None:
    owner = await add_member(server.runtime)
    other = await add_member(server.runtime, "Other Shop", email="other@example.com")
    async with server.runtime.db.session() as session:
        from callable_agents.core.models import Workspace

        workspace = await session.get(Workspace, other.workspace_id)
        assert workspace is not None
        theirs = await connect_integration(session, server.runtime.vault, workspace, provider="http", name="theirs", public={}, secrets={"token": "their-token-000000000"})
    async with signed_in_client(server, owner) as client:
        page = await client.get("/dashboard/integrations")
        assert "theirs" not in page.text
        for path, data in ((f"/dashboard/integrations/{theirs.id}/remove", {}), (f"/dashboard/integrations/{theirs.id}/secrets", {"secret.token": "y" * 20}),
                           ("/dashboard/integrations/theirs/remove", {})):
            assert (await client.post(path, data)).status_code == 404, path
    assert await names(server, other) == ["theirs"]


async def test_names_and_values_are_escaped(server: LiveServer) -> None:
    owner = await add_member(server.runtime)
    async with signed_in_client(server, owner) as client:
        xss = '<img src=x onerror=alert(1)>'
        response = await client.post("/dashboard/integrations/connect/http", {"name": xss, "public.base_url": "https://x.example.com/<b>", "secret.token": "z" * 20})
        assert response.status_code == 422 and xss not in response.text and "&lt;img" in response.text
