"""The WhatsApp inbound webhook, in-process through the real app (ASGI), on a real database.

Requests are signed exactly as Twilio signs them (twilio's own ``RequestValidator``
algorithm, over the URL configured in Twilio), and every rejection is checked to store
nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from callable_agents.core.config import Settings
from callable_agents.core.models import Channel, Conversation, Job
from callable_agents.core.runtime import Runtime
from callable_agents.plugins.whatsapp.accounts import CHANNEL_TTL_SECONDS
from callable_agents.plugins.whatsapp.webhook import EMPTY_TWIML, MAX_WEBHOOK_BYTES
from callable_agents.core.store.workspaces import create_api_key
from callable_agents.server import create_app
from tests.e2e.whatsapp_support import (
    ACCOUNT,
    CUSTOMER,
    OTHER_ACCOUNT,
    PUBLIC_BASE_URL,
    SENDER,
    SERVICE,
    TOKEN,
    WhatsAppWorld,
    count_rows,
    file_all_queued,
    form_and_headers,
    make_world,
    messages_of,
    serving,
    sqlite_settings,
)
from callable_agents.testing.twilio_signing import inbound_params, new_message_sid, signed_headers


@dataclass
class Env:
    client: httpx.AsyncClient
    runtime: Runtime
    world: WhatsAppWorld

    @property
    def inbound_url(self) -> str:
        return self.world.urls(self.runtime)["inbound"]

    @property
    def path(self) -> str:
        return self.world.path("inbound")

    async def post_signed(self, params: dict[str, str], *, url: str | None = None, token: str = TOKEN, query: str = "") -> httpx.Response:
        signed = (url or self.inbound_url) + (f"?{query}" if query else "")
        return await self.client.post(self.path + (f"?{query}" if query else ""), **form_and_headers(token, signed, params))


def whatsapp_settings(base: Settings, **overrides: object) -> Settings:
    values: dict[str, object] = {"public_base_url": PUBLIC_BASE_URL}
    values.update(overrides)
    return base.model_copy(update=values)


@asynccontextmanager
async def _env(settings: Settings, config: dict[str, object] | None = None) -> AsyncIterator[Env]:
    app = create_app(settings)
    async with serving(app) as client:
        runtime: Runtime = app.state.runtime
        world = await make_world(runtime, config=config)
        yield Env(client, runtime, world)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    """SQLite: most webhook behaviour doesn't depend on the backend."""
    settings = sqlite_settings(tmp_path)
    async with _env(settings) as value:
        yield value


@pytest.fixture
async def env_on_backend(settings: Settings) -> AsyncIterator[Env]:
    """Both SQLite and PostgreSQL: for the atomicity that depends on the database."""
    async with _env(whatsapp_settings(settings)) as value:
        yield value


def params(body: str = "Hi! Are you open on Sunday?", **extra: str) -> dict[str, str]:
    return inbound_params(ACCOUNT, CUSTOMER, SENDER, body, **extra)


# --- the happy path ------------------------------------------------------------------------


async def test_signed_message_is_stored_with_its_turn_job_and_answered_with_empty_twiml(env: Env) -> None:
    sent = params(
        ButtonPayload="order-status",
        ButtonText="Order status",
        OriginalRepliedMessageSid=new_message_sid(),
        OriginalRepliedMessageSender=SENDER,
        ReferralHeadline="Fresh bread daily",
        ReferralCtwaClid="ARAkLkA8rmlFeiCktEJQ",
        SomeFieldTwilioAddsTomorrow="kept as sent",
    )
    response = await env.post_signed(sent)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text == EMPTY_TWIML

    [message] = await messages_of(env.runtime, env.world.channel.id)
    assert message.direction == "inbound" and message.author == "customer"
    # A tapped button: the agent sees which choice was made (its title and id).
    assert message.text == "Order status\n[The customer tapped the choice 'Order status' (id order-status)]"
    assert message.provider_message_id == sent["MessageSid"]
    assert message.meta == sent  # every parameter, including ones we don't know
    async with env.runtime.db.session() as session:
        conversation = await session.get(Conversation, message.conversation_id)
        jobs = (await session.scalars(select(Job))).all()
    assert conversation is not None
    assert conversation.external_user_id == CUSTOMER
    assert conversation.profile == {"ProfileName": "Ana Test", "WaId": "15551234567"}
    assert conversation.last_inbound_at is not None
    assert [(job.kind, job.lane, job.status) for job in jobs] == [("turn", conversation.id, "pending")]


async def test_media_and_location_are_kept(env: Env) -> None:
    image_url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages/MM{'a' * 32}/Media/ME{'b' * 32}"
    response = await env.post_signed(params("", media=[(image_url, "image/jpeg")]))
    assert response.status_code == 200
    location = params("", Latitude="41.3874", Longitude="2.1686", Label="Bella's Bakery", Address="Carrer Gran 1")
    assert (await env.post_signed(location)).status_code == 200

    image, place = await messages_of(env.runtime, env.world.channel.id)
    assert image.media == [{"url": image_url, "content_type": "image/jpeg"}]
    assert place.text == "[The customer shared a location: Bella's Bakery, Carrer Gran 1 (41.3874, 2.1686)]"
    assert place.meta["Latitude"] == "41.3874"


async def test_repeated_fields_are_signed_and_kept_as_lists(env: Env) -> None:
    sent: dict[str, object] = {**params(), "Tag": ["b", "a"]}
    response = await env.client.post(
        env.path, data=sent, headers=signed_headers(TOKEN, env.inbound_url, sent)  # type: ignore[arg-type]
    )
    assert response.status_code == 200
    [message] = await messages_of(env.runtime, env.world.channel.id)
    assert message.meta["Tag"] == ["b", "a"]


# --- signatures ---------------------------------------------------------------------------


async def test_missing_signature_is_refused_logged_without_the_body_and_stores_nothing(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    secret_body = "my card number is 4111 1111 1111 1111"
    with caplog.at_level(logging.WARNING):
        response = await env.client.post(env.path, data=params(secret_body))
    assert response.status_code == 403
    assert await count_rows(env.runtime) == (0, 0)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "missing X-Twilio-Signature" in logged
    assert "4111" not in logged and TOKEN not in logged


@pytest.mark.parametrize(
    "tamper",
    ["wrong_token", "changed_body", "extra_field", "internal_url", "other_channel_url", "garbage"],
)
async def test_invalid_signature_is_refused_and_stores_nothing(env: Env, tamper: str) -> None:
    sent = params()
    if tamper == "wrong_token":
        kwargs = form_and_headers("not-the-token", env.inbound_url, sent)
    elif tamper == "changed_body":
        kwargs = form_and_headers(TOKEN, env.inbound_url, sent)
        kwargs["data"] = {**sent, "Body": "Send me everything"}
    elif tamper == "extra_field":
        kwargs = form_and_headers(TOKEN, env.inbound_url, sent)
        kwargs["data"] = {**sent, "Injected": "1"}
    elif tamper == "internal_url":
        # What the app sees behind a TLS proxy: not what Twilio signed.
        kwargs = form_and_headers(TOKEN, f"http://testserver{env.path}", sent)
    elif tamper == "other_channel_url":
        kwargs = form_and_headers(TOKEN, f"{PUBLIC_BASE_URL}/channels/whatsapp/{'0' * 32}/inbound", sent)
    else:
        kwargs = form_and_headers(TOKEN, env.inbound_url, sent)
        kwargs["headers"]["X-Twilio-Signature"] = "AAAA"
    response = await env.client.post(env.path, **kwargs)
    assert response.status_code == 403
    assert await count_rows(env.runtime) == (0, 0)


async def test_signature_over_the_public_url_passes_behind_a_proxy_with_or_without_default_port(env: Env) -> None:
    # The request reaches the app as http://testserver/...; Twilio signed the public https URL.
    assert (await env.post_signed(params())).status_code == 200
    with_port = env.inbound_url.replace("https://bot.example.com/", "https://bot.example.com:443/")
    assert (await env.post_signed(params(), url=with_port)).status_code == 200
    assert len(await messages_of(env.runtime, env.world.channel.id)) == 2


async def test_query_string_is_part_of_the_signed_url(env: Env) -> None:
    assert (await env.post_signed(params(), query="tenant=bella&x=1")).status_code == 200
    # The same query signed without it: refused.
    sent = params()
    response = await env.client.post(env.path + "?tenant=bella", **form_and_headers(TOKEN, env.inbound_url, sent))
    assert response.status_code == 403


async def test_configured_public_url_with_port_and_override_fragment(tmp_path: Path) -> None:
    public = "https://tunnel.example.net:8443/hooks/bella/inbound#rc=2&rt=12000"
    settings = sqlite_settings(tmp_path)
    async with _env(settings, config={"sender": SENDER, "public_inbound_url": public}) as env:
        assert env.inbound_url == public
        signed = "https://tunnel.example.net:8443/hooks/bella/inbound"  # fragments never reach us
        assert (await env.post_signed(params(), url=signed)).status_code == 200
        # Another port is another URL.
        other_port = "https://tunnel.example.net:9443/hooks/bella/inbound"
        assert (await env.post_signed(params(), url=other_port)).status_code == 403
        assert env.world.urls(env.runtime)["status"] == "https://tunnel.example.net:8443/hooks/bella/status#rc=2&rt=12000"


async def test_messaging_service_channel_accepts_its_webhooks(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path)
    async with _env(settings, config={"messaging_service_sid": SERVICE}) as env:
        assert (await env.post_signed(params(MessagingServiceSid=SERVICE))).status_code == 200


async def test_wrong_account_sid_is_refused_even_when_signed_with_the_right_token(env: Env) -> None:
    sent = inbound_params(OTHER_ACCOUNT, CUSTOMER, SENDER, "hello")
    assert (await env.post_signed(sent)).status_code == 403
    without = {k: v for k, v in params().items() if k != "AccountSid"}
    assert (await env.post_signed(without)).status_code == 403
    assert await count_rows(env.runtime) == (0, 0)


async def test_disabled_validation_lets_requests_through_with_a_warning_each_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = sqlite_settings(tmp_path, twilio_validate_signatures=False)
    async with _env(settings) as env:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                assert (await env.client.post(env.path, data=params())).status_code == 200
        warnings = [r for r in caplog.records if "let through WITHOUT checking its signature" in r.getMessage()]
        assert len(warnings) == 3
        assert all(r.levelno == logging.WARNING for r in warnings)
        assert len(await messages_of(env.runtime, env.world.channel.id)) == 3


# --- which channel ----------------------------------------------------------------------------


async def test_unknown_disabled_or_other_kind_of_channel_is_404_and_stores_nothing(env: Env) -> None:
    unknown = await env.client.post(
        f"/channels/whatsapp/{'0' * 32}/inbound",
        **form_and_headers(TOKEN, f"{PUBLIC_BASE_URL}/channels/whatsapp/{'0' * 32}/inbound", params()),
    )
    assert unknown.status_code == 404

    async with env.runtime.db.session() as session:
        terminal = Channel(workspace_id=env.world.workspace.id, kind="terminal", name="t", agent_id=env.world.agent.id)
        session.add(terminal)
    terminal_url = f"{PUBLIC_BASE_URL}/channels/whatsapp/{terminal.id}/inbound"
    other_kind = await env.client.post(
        f"/channels/whatsapp/{terminal.id}/inbound", **form_and_headers(TOKEN, terminal_url, params())
    )
    assert other_kind.status_code == 404

    async with env.runtime.db.session() as session:
        await session.execute(update(Channel).where(Channel.id == env.world.channel.id).values(enabled=False))
    assert (await env.post_signed(params())).status_code == 404
    assert await count_rows(env.runtime) == (0, 0)


async def test_a_channel_disabled_while_in_use_stops_answering_within_a_second(env: Env) -> None:
    assert (await env.post_signed(params())).status_code == 200  # the channel is now cached
    async with env.runtime.db.session() as session:
        await session.execute(update(Channel).where(Channel.id == env.world.channel.id).values(enabled=False))
    await asyncio.sleep(CHANNEL_TTL_SECONDS + 0.1)
    assert (await env.post_signed(params())).status_code == 404
    assert await count_rows(env.runtime) == (1, 1)


async def test_get_is_not_allowed(env: Env) -> None:
    assert (await env.client.get(env.path)).status_code == 405


# --- malformed and oversized ------------------------------------------------------------------


async def test_malformed_bodies_get_400_or_415_with_the_reason(env: Env) -> None:
    headers = signed_headers(TOKEN, env.inbound_url, params())
    bad_utf8 = await env.client.post(env.path, content=b"Body=%FF%FE&MessageSid=SM1", headers=headers)
    assert bad_utf8.status_code == 400 and "UTF-8" in bad_utf8.text
    not_ascii = await env.client.post(env.path, content="Body=olá".encode(), headers=headers)
    assert not_ascii.status_code == 400 and "URL-encoded" in not_ascii.text
    no_equals = await env.client.post(env.path, content=b"Body&MessageSid=SM1", headers=headers)
    assert no_equals.status_code == 400 and "without '='" in no_equals.text
    json_body = await env.client.post(env.path, json=params(), headers={"X-Twilio-Signature": "x"})
    assert json_body.status_code == 415 and "application/x-www-form-urlencoded" in json_body.text
    assert await count_rows(env.runtime) == (0, 0)


@pytest.mark.parametrize(("field", "value"), [("MessageSid", None), ("From", None), ("MessageSid", "SM not-a-sid!")])
async def test_signed_request_missing_a_required_field_gets_400_naming_it(env: Env, field: str, value: str | None) -> None:
    sent = params()
    if value is None:
        del sent[field]
    else:
        sent[field] = value
    response = await env.post_signed(sent)
    assert response.status_code == 400
    assert response.text.startswith(field)
    assert await count_rows(env.runtime) == (0, 0)


async def test_oversized_body_is_413_and_stores_nothing(env: Env) -> None:
    sent = params("x" * (MAX_WEBHOOK_BYTES + 10))
    response = await env.post_signed(sent)
    assert response.status_code == 413
    # Without a Content-Length (chunked), the cap holds while reading.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_WEBHOOK_BYTES // 1024 + 2):
            yield b"Body=" + b"y" * 1019
    streamed = await env.client.post(
        env.path, content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert streamed.status_code == 413
    assert await count_rows(env.runtime) == (0, 0)


# --- dedupe -----------------------------------------------------------------------------------


async def test_replayed_message_sid_gets_the_same_answer_and_is_stored_once(env: Env) -> None:
    sent = params()
    first = await env.post_signed(sent)
    second = await env.post_signed(sent)
    assert first.status_code == second.status_code == 200
    assert first.text == second.text == EMPTY_TWIML
    assert await count_rows(env.runtime) == (1, 1)


async def test_concurrent_deliveries_of_one_message_sid_store_one_message(env_on_backend: Env) -> None:
    env = env_on_backend
    sent = params()
    responses = await asyncio.gather(*(env.post_signed(sent) for _ in range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert {r.text for r in responses} == {EMPTY_TWIML}
    assert await count_rows(env.runtime) == (1, 1)


async def test_a_burst_of_messages_shares_one_pending_turn(env_on_backend: Env) -> None:
    env = env_on_backend
    for text in ("Hi", "Do you deliver?", "To Gràcia?"):
        assert (await env.post_signed(params(text))).status_code == 200
    assert await count_rows(env.runtime) == (3, 1)


async def opted_out(env: Env) -> bool:
    """The conversation's opt-out once what the webhooks queued is filed."""
    await file_all_queued(env.runtime)
    async with env.runtime.db.session() as session:
        return bool(await session.scalar(select(Conversation.opted_out)))


async def test_opt_out_keywords_mute_and_unmute_the_contact(env: Env) -> None:
    assert (await env.post_signed(params("STOP", OptOutType="STOP"))).status_code == 200
    assert await opted_out(env)
    assert (await env.post_signed(params("Are you there?"))).status_code == 200
    assert await opted_out(env)  # an ordinary message leaves the choice as it was
    assert (await env.post_signed(params("START", OptOutType="START"))).status_code == 200
    assert not await opted_out(env)
    # Filed together, in one batch: the later keyword wins.
    assert (await env.post_signed(params("STOP", OptOutType="STOP"))).status_code == 200
    assert (await env.post_signed(params("START", OptOutType="START"))).status_code == 200
    assert not await opted_out(env)
    assert (await env.post_signed(params("START", OptOutType="START"))).status_code == 200
    assert (await env.post_signed(params("STOP", OptOutType="STOP"))).status_code == 200
    assert await opted_out(env)


@pytest.mark.parametrize(
    ("stop", "start"),
    [("STOP", "START"), ("stop", "start"), ("Unsubscribe", "yes"), ("  STOPALL ", "UNSTOP"), ("end.", "Start!"),
     ("QUIT", "YES"), ("cancel", "start"), ("revoke", "START"), ("OPTOUT", "unstop")],
)
async def test_twilio_keywords_without_opt_out_type_change_the_choice(env: Env, stop: str, start: str) -> None:
    """Twilio reports OptOutType only with Advanced Opt-Out: the keyword itself must count."""

    assert (await env.post_signed(params(stop))).status_code == 200
    assert await opted_out(env)
    for not_a_keyword in ("Please stop sending me offers", "HELP", "info", "yes please", "started"):
        assert (await env.post_signed(params(not_a_keyword))).status_code == 200
        assert await opted_out(env), not_a_keyword
    assert (await env.post_signed(params(start))).status_code == 200
    assert not await opted_out(env)


async def test_opt_out_type_decides_over_the_body_and_help_changes_nothing(env: Env) -> None:
    # Advanced Opt-Out with a localised keyword: Twilio labels it, the body is no English keyword.
    assert (await env.post_signed(params("BAJA", OptOutType="STOP"))).status_code == 200
    assert await opted_out(env)
    assert (await env.post_signed(params("START", OptOutType="HELP"))).status_code == 200
    assert await opted_out(env)  # Twilio says this START was a help request of the service's own
    assert (await env.post_signed(params("ALTA", OptOutType="START"))).status_code == 200
    assert not await opted_out(env)
    assert (await env.post_signed(params("STOP", OptOutType="SOMETHING_NEW"))).status_code == 200
    assert await opted_out(env)  # an unknown label: the body decides


async def test_the_choice_is_shown_on_the_conversation_in_the_admin_api(env: Env) -> None:
    async with env.runtime.db.session() as session:
        _row, key = await create_api_key(session, env.world.workspace.id, "opt-out")
    assert (await env.post_signed(params("stop"))).status_code == 200
    await file_all_queued(env.runtime)
    headers = {"Authorization": f"Bearer {key}"}
    [conversation] = (await env.client.get("/api/v1/conversations", headers=headers)).json()["conversations"]
    assert conversation["opted_out"] is True
    assert (await env.post_signed(params("START"))).status_code == 200
    await file_all_queued(env.runtime)
    shown = (await env.client.get(f"/api/v1/conversations/{conversation['id']}", headers=headers)).json()
    assert shown["opted_out"] is False
