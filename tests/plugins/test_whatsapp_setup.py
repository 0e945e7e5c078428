"""Setting a WhatsApp channel up at Twilio (the channel type's ``setup``), with the real ``twilio``
client against the loopback fake: the senders offered, "Configure Twilio for me" on a number and
on a Messaging Service (the fake records what was set), the cases where only the URLs can be
given, Twilio's refusals (401, 404, down, unreachable), and the test message."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.errors import InvalidInput
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.channels import create_or_update_channel
from callable_agents.core.store.integrations import connect_integration, stored_integration
from callable_agents.core.store.public_channels import channel_record
from callable_agents.plugin import ChannelSetup, ChannelSetupError, ChannelType, StoredIntegration
from callable_agents.plugins.whatsapp import WHATSAPP, channel_urls
from callable_agents.server import create_app
from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import inbound_params, signed_form
from tests.e2e.whatsapp_support import (
    ACCOUNT,
    KEY_SECRET,
    KEY_SID,
    OTHER_ACCOUNT,
    OTHER_TOKEN,
    TOKEN,
    WhatsAppWorld,
    file_all_queued,
    make_world,
    messages_of,
    serving,
    sqlite_settings,
)
from tests.plugins.test_twilio_api import closed_port_url

NUMBER = "+14155550100"
SMS_ONLY = "+14155550111"
FOREIGN = "+14155550199"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN)
        server.add_account(OTHER_ACCOUNT, OTHER_TOKEN)
        server.add_api_key(ACCOUNT, KEY_SID, KEY_SECRET)
        yield server


async def open_with(tmp_path: Path, api_base_url: str, **overrides: object) -> Runtime:
    return await open_runtime(
        sqlite_settings(tmp_path, twilio_api_base_url=api_base_url, twilio_messaging_base_url=api_base_url, **overrides)
    )


@pytest.fixture
async def runtime(tmp_path: Path, fake: FakeTwilio) -> AsyncIterator[Runtime]:
    opened = await open_with(tmp_path, fake.base_url)
    try:
        yield opened
    finally:
        await close_runtime(opened)


def setup_of(channel_type: ChannelType) -> ChannelSetup:
    assert channel_type.setup is not None
    return channel_type.setup


SETUP = setup_of(WHATSAPP)


def snapshots(world: WhatsAppWorld) -> tuple[StoredIntegration, object]:
    return stored_integration(world.integration, world.workspace), channel_record(world.channel)


def test_the_whatsapp_channel_type_declares_its_provider_and_setup() -> None:
    assert WHATSAPP.integration_provider == "twilio"
    assert WHATSAPP.setup is SETUP


# --- the senders offered -------------------------------------------------------------------------


async def test_senders_are_the_accounts_numbers_services_and_the_sandbox(runtime: Runtime, fake: FakeTwilio) -> None:
    fake.add_phone_number(ACCOUNT, NUMBER, friendly_name="Front desk", whatsapp=True)
    fake.add_phone_number(ACCOUNT, SMS_ONLY)
    fake.add_whatsapp_sender(ACCOUNT, "whatsapp:+15005550006")  # a WhatsApp sender that is no Twilio number
    service = fake.add_messaging_service(ACCOUNT, "Support <team>")
    fake.add_phone_number(OTHER_ACCOUNT, FOREIGN, whatsapp=True)
    fake.add_messaging_service(OTHER_ACCOUNT, "Not yours")
    world = await make_world(runtime)
    integration, _ = snapshots(world)

    listed = await SETUP.list_senders(runtime, integration)

    by_value = {s.value: s for s in listed.senders}
    assert list(by_value) == [
        f"whatsapp:{NUMBER}", f"whatsapp:{SMS_ONLY}", "whatsapp:+15005550006", service, "whatsapp:+14155238886"
    ]
    front = by_value[f"whatsapp:{NUMBER}"]
    assert (front.config_field, front.kind, front.label, front.configurable, front.note) == (
        "sender", "phone_number", f"{NUMBER} (Front desk)", True, ""
    )
    assert "not registered as a WhatsApp sender" in by_value[f"whatsapp:{SMS_ONLY}"].note
    assert by_value["whatsapp:+15005550006"].configurable is False
    assert (by_value[service].config_field, by_value[service].label) == ("messaging_service_sid", f"Support <team> ({service})")
    sandbox = by_value["whatsapp:+14155238886"]
    assert sandbox.kind == "sandbox" and not sandbox.configurable and "Sandbox settings" in sandbox.note
    assert listed.notes == ()
    assert TOKEN not in json.dumps([asdict(s) for s in listed.senders])


async def test_senders_are_still_listed_when_the_whatsapp_senders_list_fails(runtime: Runtime, fake: FakeTwilio) -> None:
    fake.add_phone_number(ACCOUNT, SMS_ONLY)
    fake.fail_next(1, 403, code=20403, scope="senders")
    world = await make_world(runtime)
    listed = await SETUP.list_senders(runtime, snapshots(world)[0])
    assert [s.value for s in listed.senders] == [f"whatsapp:{SMS_ONLY}", "whatsapp:+14155238886"]
    assert listed.senders[0].note == ""  # unknown, so not claimed either way
    [note] = listed.notes
    assert "could not be checked" in note and "HTTP 403" in note


# --- configure: a number -------------------------------------------------------------------------


async def test_configure_sets_the_numbers_inbound_url_to_the_channels_signed_url(runtime: Runtime, fake: FakeTwilio) -> None:
    number_sid = fake.add_phone_number(ACCOUNT, NUMBER, whatsapp=True, sms_url="https://old.example.com/sms")
    world = await make_world(runtime, config={"sender": f"whatsapp:{NUMBER}"})
    integration, channel = snapshots(world)

    result = await SETUP.configure(runtime, integration, channel)  # type: ignore[arg-type]

    urls = channel_urls(runtime.settings, world.channel)
    assert result.configured and result.target == f"phone number {NUMBER}"
    assert dict(result.urls) == urls
    assert dict(result.settings) == {"SmsUrl": urls["inbound"], "SmsMethod": "POST"}
    assert "was https://old.example.com/sms before" in result.notes[0]
    [update] = fake.configuration_updates
    assert update["resource"] == "phone_number" and update["sid"] == number_sid and update["account_sid"] == ACCOUNT
    assert update["fields"] == {"SmsUrl": urls["inbound"], "SmsMethod": "POST"}
    assert fake.phone_number(NUMBER)["sms_url"] == f"https://bot.example.com/channels/whatsapp/{world.channel.id}/inbound"


async def test_configure_uses_the_api_key_when_the_integration_has_one(runtime: Runtime, fake: FakeTwilio) -> None:
    fake.add_phone_number(ACCOUNT, NUMBER)
    world = await make_world(runtime, config={"sender": f"whatsapp:{NUMBER}"}, api_key=(KEY_SID, KEY_SECRET))
    integration, channel = snapshots(world)
    assert (await SETUP.configure(runtime, integration, channel)).configured  # type: ignore[arg-type]
    assert fake.configuration_updates[0]["auth_username"] == KEY_SID


async def test_a_number_of_another_account_is_not_found_and_nothing_is_set(runtime: Runtime, fake: FakeTwilio) -> None:
    fake.add_phone_number(OTHER_ACCOUNT, FOREIGN)
    world = await make_world(runtime, config={"sender": f"whatsapp:{FOREIGN}"})
    with pytest.raises(ChannelSetupError) as info:
        await SETUP.configure(runtime, *snapshots(world))  # type: ignore[arg-type]
    assert info.value.problem == "not_found" and info.value.status_code == 404
    assert f"{FOREIGN} is not a phone number of Twilio account {ACCOUNT}" in str(info.value)
    assert fake.configuration_updates == []
    assert fake.phone_number(FOREIGN)["sms_url"] == ""


# --- configure: a Messaging Service -----------------------------------------------------------------


async def test_configure_sets_the_services_inbound_and_status_urls(runtime: Runtime, fake: FakeTwilio) -> None:
    service = fake.add_messaging_service(ACCOUNT, "Support", use_inbound_webhook_on_number=True)
    world = await make_world(runtime, config={"messaging_service_sid": service})
    result = await SETUP.configure(runtime, *snapshots(world))  # type: ignore[arg-type]
    urls = channel_urls(runtime.settings, world.channel)
    assert result.configured and result.target == f"Messaging Service {service}"
    assert dict(result.settings) == {"InboundRequestUrl": urls["inbound"], "InboundMethod": "POST", "StatusCallback": urls["status"]}
    assert any("each number's own inbound webhook" in note for note in result.notes)
    stored = fake.messaging_service(service)
    assert (stored["inbound_request_url"], stored["status_callback"]) == (urls["inbound"], urls["status"])


async def test_a_service_of_another_account_is_not_found(runtime: Runtime, fake: FakeTwilio) -> None:
    foreign = fake.add_messaging_service(OTHER_ACCOUNT, "Theirs")
    world = await make_world(runtime, config={"messaging_service_sid": foreign})
    with pytest.raises(ChannelSetupError, match=f"has no Messaging Service {foreign}") as info:
        await SETUP.configure(runtime, *snapshots(world))  # type: ignore[arg-type]
    assert info.value.problem == "not_found"
    assert fake.configuration_updates == [] and fake.messaging_service(foreign)["inbound_request_url"] is None


# --- configure: only the URLs can be given ---------------------------------------------------------


async def test_the_sandbox_gets_the_urls_and_the_console_steps_without_calling_twilio(runtime: Runtime, fake: FakeTwilio) -> None:
    world = await make_world(runtime, config={"sender": "whatsapp:+14155238886"})
    result = await SETUP.configure(runtime, *snapshots(world))  # type: ignore[arg-type]
    assert not result.configured and dict(result.settings) == {}
    assert dict(result.urls) == channel_urls(runtime.settings, world.channel)
    assert "Sandbox settings" in result.reason
    assert fake.requests == []


async def test_a_local_public_base_url_is_not_set_at_twilio(tmp_path: Path, fake: FakeTwilio) -> None:
    fake.add_phone_number(ACCOUNT, NUMBER)
    runtime = await open_with(tmp_path, fake.base_url, public_base_url="http://127.0.0.1:8000")
    try:
        world = await make_world(runtime, config={"sender": f"whatsapp:{NUMBER}"})
        result = await SETUP.configure(runtime, *snapshots(world))  # type: ignore[arg-type]
    finally:
        await close_runtime(runtime)
    assert not result.configured and "CALLABLE_PUBLIC_BASE_URL" in result.reason
    assert result.urls["inbound"].startswith("http://127.0.0.1:8000/channels/whatsapp/")
    assert fake.configuration_updates == []


# --- Twilio refuses or cannot be reached -------------------------------------------------------------


async def test_rotated_credentials_are_refused_clearly_without_the_secret(runtime: Runtime, fake: FakeTwilio) -> None:
    fake.add_phone_number(ACCOUNT, NUMBER)
    world = await make_world(runtime, config={"sender": f"whatsapp:{NUMBER}"})
    fake.add_account(ACCOUNT, "a-newly-rotated-token")  # the stored token no longer works
    for attempt in (SETUP.list_senders(runtime, snapshots(world)[0]), SETUP.configure(runtime, *snapshots(world))):  # type: ignore[arg-type]
        with pytest.raises(ChannelSetupError) as info:
            await attempt
        assert info.value.problem == "credentials_refused" and info.value.status_code == 422
        assert f"Twilio refused the credentials of account {ACCOUNT}" in str(info.value)
        assert TOKEN not in str(info.value) and "rotated-token" not in str(info.value)
    assert fake.configuration_updates == []


# aiohttp retries a GET once on a dropped kept-alive connection, so a drop is made to last.
@pytest.mark.parametrize("failure", [{"status": 500}, {"status": 429, "code": 20429}, {"disconnect": True, "n": 5}])
async def test_twilio_failing_on_its_side_is_reported_as_unreachable(
    runtime: Runtime, fake: FakeTwilio, failure: dict[str, object]
) -> None:
    fake.add_phone_number(ACCOUNT, NUMBER)
    world = await make_world(runtime, config={"sender": f"whatsapp:{NUMBER}"})
    fake.fail_next(scope="numbers", **failure)  # type: ignore[arg-type]
    with pytest.raises(ChannelSetupError, match="try again|could not reach Twilio") as info:
        await SETUP.configure(runtime, *snapshots(world))  # type: ignore[arg-type]
    assert info.value.problem == "unreachable" and info.value.status_code == 502
    assert fake.configuration_updates == []


async def test_twilio_out_of_reach_is_said_so(tmp_path: Path) -> None:
    runtime = await open_with(tmp_path, closed_port_url())
    try:
        world = await make_world(runtime)
        with pytest.raises(ChannelSetupError, match="could not reach Twilio to list the account's phone numbers") as info:
            await SETUP.list_senders(runtime, snapshots(world)[0])
    finally:
        await close_runtime(runtime)
    assert info.value.problem == "unreachable"


async def test_a_channel_of_another_integration_is_refused(runtime: Runtime, fake: FakeTwilio) -> None:
    world = await make_world(runtime)
    async with runtime.db.session() as session:
        other = await connect_integration(
            session, runtime.vault, world.workspace, provider="twilio", name="second",
            public={"account_sid": OTHER_ACCOUNT}, secrets={"auth_token": OTHER_TOKEN},
        )
    with pytest.raises(InvalidInput, match="does not send through integration 'second'"):
        await SETUP.configure(runtime, stored_integration(other, world.workspace), channel_record(world.channel))
    with pytest.raises(InvalidInput, match="does not send through"):
        await SETUP.send_test(runtime, stored_integration(other, world.workspace), channel_record(world.channel), "+15551230000", "hi")
    assert fake.requests == []


# --- the test message ----------------------------------------------------------------------------------


async def test_a_test_message_goes_from_the_channels_sender(runtime: Runtime, fake: FakeTwilio) -> None:
    world = await make_world(runtime, config={"sender": f"whatsapp:{NUMBER}"})
    result = await SETUP.send_test(runtime, *snapshots(world), " +15551230000 ", "Hello from the set-up page")  # type: ignore[arg-type]
    [sent] = fake.sent_messages
    assert (sent["to"], sent["from_"], sent["body"]) == ("whatsapp:+15551230000", f"whatsapp:{NUMBER}", "Hello from the set-up page")
    assert result.to == "whatsapp:+15551230000" and result.provider_message_id == sent["sid"] and result.status == "queued"


@pytest.mark.parametrize(
    ("to", "text", "field"),
    [("0155512300", "hi", "to"), ("whatsapp:15551230000", "hi", "to"), ("+1555\x00", "hi", "to"),
     ("+15551230000", "   ", "text"), ("+15551230000", "x" * 1601, "text"), ("+15551230000", "a\ud800", "text")],
)
async def test_a_bad_recipient_or_text_is_refused_naming_the_field(
    runtime: Runtime, fake: FakeTwilio, to: str, text: str, field: str
) -> None:
    world = await make_world(runtime)
    with pytest.raises(InvalidInput) as info:
        await SETUP.send_test(runtime, *snapshots(world), to, text)  # type: ignore[arg-type]
    assert info.value.field == field and str(info.value).startswith(f"{field}: expected")
    assert fake.sent_messages == []


async def test_a_test_message_twilio_refuses_says_why(runtime: Runtime, fake: FakeTwilio) -> None:
    world = await make_world(runtime)
    fake.fail_next(1, 400, code=63015, scope="messages")
    with pytest.raises(ChannelSetupError, match="has not joined the sandbox") as info:
        await SETUP.send_test(runtime, *snapshots(world), "+15551230000", "hi")  # type: ignore[arg-type]
    assert info.value.problem == "refused"
    fake.add_account(ACCOUNT, "a-newly-rotated-token")
    with pytest.raises(ChannelSetupError) as refused:
        await SETUP.send_test(runtime, *snapshots(world), "+15551230000", "hi")  # type: ignore[arg-type]
    assert refused.value.problem == "credentials_refused"


# --- the URL set at Twilio is the URL the webhook checks ------------------------------------------------


async def test_a_webhook_signed_for_the_url_set_at_twilio_is_accepted(tmp_path: Path, fake: FakeTwilio) -> None:
    fake.add_phone_number(ACCOUNT, NUMBER, whatsapp=True)
    settings = sqlite_settings(tmp_path, twilio_api_base_url=fake.base_url, twilio_messaging_base_url=fake.base_url)
    app = create_app(settings)
    async with serving(app) as client:
        runtime: Runtime = app.state.runtime
        world = await make_world(runtime, config={"sender": f"whatsapp:{NUMBER}"})
        await SETUP.configure(runtime, *snapshots(world))  # type: ignore[arg-type]
        configured_url = fake.phone_number(NUMBER)["sms_url"]  # what Twilio would now sign and call
        params = inbound_params(ACCOUNT, "whatsapp:+15551234567", f"whatsapp:{NUMBER}", "Are you open today?")
        path = configured_url.removeprefix("https://bot.example.com")
        accepted = await client.post(path, **signed_form(TOKEN, configured_url, params))
        forged = await client.post(path, **signed_form("not-the-token", configured_url, params))
        assert accepted.status_code == 200 and forged.status_code == 403
        await file_all_queued(runtime)
        [stored] = await messages_of(runtime, world.channel.id, "inbound")
        assert stored.text == "Are you open today?"
