"""Setting a WhatsApp channel up at Twilio: the senders to pick from, "Configure Twilio for me"
and a test message (the channel type's :class:`~callable_agents.plugin.ChannelSetup`).

* :func:`list_senders` asks Twilio for the account's phone numbers (IncomingPhoneNumbers),
  Messaging Services (Messaging v1) and, best effort, its WhatsApp senders (Senders API), and
  offers the shared sandbox sender. A number that is a WhatsApp sender is marked so.
* :func:`configure` checks the channel's sender belongs to the account and points it at the
  channel's URLs: on a phone number, ``SmsUrl`` ("A message comes in", POST); on a Messaging
  Service, ``InboundRequestUrl`` and ``StatusCallback``. The URLs are :func:`channel_urls`, the
  very URLs the webhook checks Twilio's signatures against. A number gets no
  ``StatusCallback``: on a number that is the *voice* call status URL, and every reply
  carries the message status URL itself. The sandbox (configured only in the Console) and a
  public base URL Twilio cannot reach are answered with the URLs and the reason instead.
* :func:`send_test` sends a text from the channel's sender.

Twilio's answers become :class:`~callable_agents.plugin.ChannelSetupError`: 401 (the
credentials no longer work), 404 (not in this account), unreachable or 5xx; no message
carries a secret.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from callable_agents.plugin import (
    ChannelRecord,
    ChannelSetup,
    ChannelSetupError,
    ConfigureResult,
    InvalidInput,
    Runtime,
    SendError,
    SenderList,
    SenderOption,
    StoredIntegration,
    TestMessageResult,
    check_text,
)
from callable_agents.plugins.whatsapp.accounts import PROVIDER, WhatsAppServices
from callable_agents.plugins.whatsapp.config import KIND, channel_config, channel_urls
from callable_agents.plugins.whatsapp.twilio_api import send_whatsapp, status_and_code

SANDBOX_SENDER = "whatsapp:+14155238886"  # Twilio's shared WhatsApp sandbox number
SANDBOX_STEPS = (
    "the sandbox's webhook is set only in the Twilio Console: Messaging > Try it out > "
    "Send a WhatsApp message > Sandbox settings > 'When a message comes in' (POST)"
)
MAX_LISTED = 500  # numbers (and services) listed per account; more would not fit a picker anyway
MAX_TEST_CHARS = 1600
_RECIPIENT = re.compile(r"^(?:whatsapp:)?(\+[1-9]\d{6,14})$")

T = TypeVar("T")


async def list_senders(runtime: Runtime, integration: StoredIntegration) -> SenderList:
    """The senders the integration's Twilio account can use for a WhatsApp channel."""
    client, account_sid = await _client(runtime, integration)
    numbers = await _ask(lambda: client.incoming_phone_numbers.list_async(limit=MAX_LISTED, page_size=100),
                         account_sid, "list the account's phone numbers")
    services = await _ask(lambda: client.messaging.v1.services.list_async(limit=MAX_LISTED, page_size=100),
                          account_sid, "list the account's Messaging Services")
    notes: list[str] = []
    try:
        wa_senders = await _ask(
            lambda: client.messaging.v2.channels_senders.list_async(channel="whatsapp", limit=MAX_LISTED),
            account_sid, "list the account's WhatsApp senders",
        )
        whatsapp: set[str] | None = {str(s.sender_id) for s in wa_senders if s.sender_id}
    except ChannelSetupError as exc:
        if exc.problem == "credentials_refused":
            raise
        whatsapp = None
        notes.append(f"Which numbers are WhatsApp senders could not be checked: {exc}")

    options: list[SenderOption] = []
    listed: set[str] = set()
    for number in numbers:
        address = f"whatsapp:{number.phone_number}"
        listed.add(address)
        label = str(number.phone_number)
        if number.friendly_name and number.friendly_name != number.phone_number:
            label += f" ({number.friendly_name})"
        note = ""
        if whatsapp is not None and address not in whatsapp:
            note = "not registered as a WhatsApp sender yet (Twilio Console: Messaging > Senders > WhatsApp senders)"
        options.append(SenderOption(address, "sender", label, "phone_number", True, note))
    for sender_id in sorted((whatsapp or set()) - listed - {SANDBOX_SENDER}):
        options.append(SenderOption(
            sender_id, "sender", sender_id.removeprefix("whatsapp:"), "whatsapp_sender", False,
            "not a phone number of this account: set its webhook on the WhatsApp sender in the Twilio Console",
        ))
    for service in services:
        options.append(SenderOption(
            str(service.sid), "messaging_service_sid", f"{service.friendly_name} ({service.sid})",
            "messaging_service", True,
        ))
    options.append(SenderOption(SANDBOX_SENDER, "sender", "+14155238886 (Twilio's WhatsApp sandbox)",
                                "sandbox", False, SANDBOX_STEPS))
    return SenderList(tuple(options), tuple(notes))


async def configure(runtime: Runtime, integration: StoredIntegration, channel: ChannelRecord) -> ConfigureResult:
    """Point the channel's sender (number or Messaging Service) at the channel's webhook URLs."""
    _check_channel(integration, channel)
    config = channel_config(channel)
    urls = channel_urls(runtime.settings, channel, config)
    target = (
        f"Messaging Service {config.messaging_service_sid}" if config.messaging_service_sid
        else f"phone number {(config.sender or '').removeprefix('whatsapp:')}"
    )
    unreachable = _unreachable_reason(urls["inbound"])
    if unreachable:
        return ConfigureResult(False, target, urls, reason=unreachable)
    if config.sender == SANDBOX_SENDER:
        return ConfigureResult(False, "Twilio's WhatsApp sandbox", urls, reason=SANDBOX_STEPS)
    client, account_sid = await _client(runtime, integration)
    if config.messaging_service_sid:
        return await _configure_service(client, account_sid, config.messaging_service_sid, urls, target)
    assert config.sender is not None  # the config needs exactly one of the two
    return await _configure_number(client, account_sid, config.sender, urls, target)


async def _configure_service(
    client: Client, account_sid: str, service_sid: str, urls: dict[str, str], target: str
) -> ConfigureResult:
    context = client.messaging.v1.services(service_sid)
    service = await _ask(context.fetch_async, account_sid, f"find Messaging Service {service_sid}",
                         not_found=f"Twilio account {account_sid} has no Messaging Service {service_sid}: "
                                   "pick one of the account's senders")
    settings = {"InboundRequestUrl": urls["inbound"], "InboundMethod": "POST", "StatusCallback": urls["status"]}
    await _ask(
        lambda: context.update_async(
            inbound_request_url=urls["inbound"], inbound_method="POST", status_callback=urls["status"]
        ),
        account_sid, f"update Messaging Service {service_sid}",
    )
    notes = _replaced("inbound URL", service.inbound_request_url, urls["inbound"])
    if service.use_inbound_webhook_on_number:
        notes += (
            "This service is set to use each number's own inbound webhook ('Defer to sender's webhook'): "
            "messages to its numbers reach the channel only if they point here too.",
        )
    return ConfigureResult(True, target, urls, settings, notes=notes)


async def _configure_number(
    client: Client, account_sid: str, sender: str, urls: dict[str, str], target: str
) -> ConfigureResult:
    phone = sender.removeprefix("whatsapp:")
    found = await _ask(lambda: client.incoming_phone_numbers.list_async(phone_number=phone, limit=20),
                       account_sid, f"look up {phone}")
    number = next((n for n in found if n.phone_number == phone), None)
    if number is None:
        raise ChannelSetupError(
            f"{phone} is not a phone number of Twilio account {account_sid}: pick one of the account's "
            "senders (a WhatsApp sender without a Twilio number gets its webhook in the Twilio Console)",
            problem="not_found",
        )
    settings = {"SmsUrl": urls["inbound"], "SmsMethod": "POST"}
    await _ask(
        lambda: client.incoming_phone_numbers(str(number.sid)).update_async(sms_url=urls["inbound"], sms_method="POST"),
        account_sid, f"update {phone}",
    )
    notes = _replaced("inbound URL", number.sms_url, urls["inbound"]) + (
        "The status URL needs no setting on a number: every reply carries it as its StatusCallback.",
    )
    return ConfigureResult(True, target, urls, settings, notes=notes)


async def send_test(
    runtime: Runtime, integration: StoredIntegration, channel: ChannelRecord, to: str, text: str
) -> TestMessageResult:
    """Send ``text`` to ``to`` (``+E164`` or ``whatsapp:+E164``) from the channel's sender."""
    _check_channel(integration, channel)
    match = _RECIPIENT.match(to.strip()) if isinstance(to, str) else None
    if match is None:
        raise InvalidInput("to: expected a phone number in international format, e.g. +14155550100", field="to")
    body = check_text(text, "text") if isinstance(text, str) else ""
    if not body.strip() or len(body) > MAX_TEST_CHARS:
        raise InvalidInput(f"text: expected 1-{MAX_TEST_CHARS} characters to send", field="text")
    config = channel_config(channel)
    client, account_sid = await _client(runtime, integration)
    recipient = f"whatsapp:{match.group(1)}"
    try:
        result = await send_whatsapp(
            client, to=recipient, from_=config.sender, messaging_service_sid=config.messaging_service_sid, body=body
        )
    except SendError as exc:
        if exc.code == "20003":
            raise _credentials_refused(account_sid) from None
        raise ChannelSetupError(
            f"the test message was not sent: {exc}", problem="unreachable" if exc.transient else "refused"
        ) from None
    return TestMessageResult(recipient, result.provider_message_id, result.status)


SETUP = ChannelSetup(list_senders=list_senders, configure=configure, send_test=send_test)


# --- helpers -----------------------------------------------------------------------------------


async def _client(runtime: Runtime, integration: StoredIntegration) -> tuple[Client, str]:
    if integration.provider != PROVIDER:
        raise InvalidInput(
            f"integration: {integration.name!r} is a {integration.provider} integration; WhatsApp needs twilio",
            field="integration",
        )
    services = WhatsAppServices.of(runtime)
    credentials = await services.credentials(runtime, integration)
    return services.client(runtime, integration, credentials), credentials.account_sid


def _check_channel(integration: StoredIntegration, channel: ChannelRecord) -> None:
    if channel.kind != KIND:
        raise InvalidInput(f"channel: {channel.name!r} is a {channel.kind} channel, not whatsapp", field="channel")
    if channel.integration_id != integration.id or channel.workspace_id != integration.workspace_id:
        raise InvalidInput(
            f"integration: channel {channel.name!r} does not send through integration {integration.name!r}",
            field="integration",
        )


async def _ask(
    call: Callable[[], Awaitable[T]], account_sid: str, doing: str, *, not_found: str | None = None
) -> T:
    """``call()`` with Twilio's failures turned into :class:`ChannelSetupError`."""
    try:
        return await call()
    except TwilioException as exc:
        status, code = status_and_code(exc)
        if status == 401 or code == 20003:
            raise _credentials_refused(account_sid) from None
        if status == 404 or code == 20404:
            raise ChannelSetupError(
                not_found or f"Twilio could not {doing}: not found in account {account_sid}", problem="not_found"
            ) from None
        if status >= 500 or status == 429:
            raise ChannelSetupError(
                f"Twilio could not {doing} right now (HTTP {status}); try again", problem="unreachable"
            ) from None
        raise ChannelSetupError(
            f"Twilio refused to {doing} (HTTP {status}, error {code})", problem="refused"
        ) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ChannelSetupError(
            f"could not reach Twilio to {doing}: {type(exc).__name__} "
            "(offline or behind a proxy? CALLABLE_TWILIO_API_BASE_URL sets the address of Twilio's API)",
            problem="unreachable",
        ) from None


def _credentials_refused(account_sid: str) -> ChannelSetupError:
    return ChannelSetupError(
        f"Twilio refused the credentials of account {account_sid}: they may have been rotated; "
        "update the Auth Token (or API key) on the Integrations page",
        problem="credentials_refused",
    )


def _unreachable_reason(url: str) -> str:
    """Why Twilio could not call ``url``, or ``""`` when it can (as far as we can tell)."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        local = host == "localhost" or host.endswith((".localhost", ".local", ".internal")) or "." not in host
    else:
        local = not address.is_global
    if not local:
        return ""
    return (
        f"Twilio cannot reach {url}: the server's public base URL (CALLABLE_PUBLIC_BASE_URL) is a local address. "
        "Set it to the address Twilio can call (e.g. an https tunnel), or paste these URLs into Twilio by hand."
    )


def _replaced(what: str, before: Any, after: str) -> tuple[str, ...]:
    if before and before != after:
        return (f"The {what} was {before} before.",)
    return ()
