"""Delivering a reply over WhatsApp through the tenant's Twilio account.

One stored reply part becomes one WhatsApp message: its text (at most 1600 characters, the
agent graph already split and formatted it) with its first media item as the attachment.
A longer text (a person's reply from the inbox) is split here, and further media go as
messages of their own, because a WhatsApp message carries one attachment; the Twilio SIDs
of the pieces already sent are recorded on the message, so a retry after a failure on a
later piece never sends an earlier one again.

**Exactly once across crashes.** Before each Messages create the attempt is recorded on the
message (``twilio_attempt``: which piece, when, to, from, body, number of media). A retry
that finds an attempt with no SID recorded for its piece (the process died during the
create, or the create timed out) does not send blind: once the attempt is
``CALLABLE_TWILIO_SEND_SETTLE_SECONDS`` old it lists Twilio's messages to the customer sent
since that day, and a message from the same sender with the same body and media count,
created after the attempt began, is taken as the attempt's (its SID recorded, nothing sent);
only when Twilio shows none is the piece sent again. A create Twilio answered with an error
sent nothing, so its attempt is forgotten at once.

WhatsApp's **24-hour customer service window**: free-form messages may only be sent within
24 hours of the customer's last message. Outside it (a person answering late, a retry that
waited too long) the channel's approved template is sent instead, or the send fails with a
clear error; Twilio's own 63016 ("outside the window") is handled the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from twilio.rest import Client

from callable_agents.plugin import (
    CallableError,
    ConversationInfo,
    OutboundMessage,
    Runtime,
    SendError,
    SendResult,
    TurnStarted,
    read_channel_agent,
    delivery_progress,
    record_delivery_progress,
    split_message,
)
from callable_agents.plugins.whatsapp.twilio_api import (
    OPTED_OUT_CODE,
    OUTSIDE_WINDOW_CODE,
    SentMessage,
    list_sent_messages,
    send_typing_indicator,
    send_whatsapp,
)
from callable_agents.plugins.whatsapp.content_api import MAX_LIST_ITEMS, Template, create_choices_content, list_templates
from callable_agents.plugins.whatsapp.settings import twilio_settings
from callable_agents.plugins.whatsapp.accounts import (
    ChannelAccount,
    NotAWhatsAppChannel,
    WhatsAppServices,
    load_channel_account,
)
from callable_agents.plugins.whatsapp.config import TemplateConfig

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 1600
CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
SENT_PARTS_KEY = "twilio_parts"  # Message.meta: SIDs of the pieces already accepted by Twilio
ATTEMPT_KEY = "twilio_attempt"  # Message.meta: the create under way (see the module's docs)
# How far Twilio's clock (and its whole-second date_created) may be behind ours.
CLOCK_SLACK = timedelta(seconds=2)
# Send errors after which Twilio may still have created the message.
_AMBIGUOUS_CODES = frozenset({"timeout", "connection_lost"})


@dataclass(frozen=True)
class Piece:
    """One Twilio message of a reply: a text, an attachment, or both (a caption)."""

    body: str | None
    media_url: str | None


def pieces_of(text: str, media: list[dict[str, Any]]) -> list[Piece]:
    """How a reply part goes out: text parts of at most 1600 characters (in code points and
    in UTF-16 units), the first carrying the first attachment, then the other attachments
    one per message."""
    texts = split_message(text, MAX_BODY_CHARS, "utf16") if text and text.strip() else []
    urls = [str(item["url"]) for item in media if isinstance(item, dict) and item.get("url")]
    pieces: list[Piece] = []
    if texts or urls:
        pieces.append(Piece(texts[0] if texts else None, urls[0] if urls else None))
    pieces += [Piece(body, None) for body in texts[1:]]
    pieces += [Piece(None, url) for url in urls[1:]]
    return pieces


async def _choices_content(runtime: Runtime, client: Client, message_id: int, choices: dict[str, Any]) -> str | None:
    """The Content SID showing ``choices`` as buttons or a list (made once per distinct set),
    or None when they go as numbered text: more than a list holds, or no Content API."""
    options = [
        {"id": str(option.get("id") or ""), "title": str(option.get("title") or "")}
        for option in choices.get("options") or [] if isinstance(option, dict)
    ]
    if not 1 <= len(options) <= MAX_LIST_ITEMS:
        return None
    text = str(choices.get("text") or "")[:1024] or "Please choose:"
    services = WhatsAppServices.of(runtime)
    key = (str(client.account_sid), json.dumps([text, options], sort_keys=True))
    found = services.choice_contents.get(key)
    if found is not None:
        return found
    try:
        content_sid = await create_choices_content(client, text, options, friendly_name=f"callable-choices-{message_id}")
    except SendError as error:
        if error.transient:
            raise
        log.warning("message %s: Twilio's Content API refused the choices (%s); sending them numbered", message_id, error)
        return None
    if len(services.choice_contents) >= 1000:
        services.choice_contents.clear()
    services.choice_contents[key] = content_sid
    return content_sid


def location_message(location: dict[str, Any], text: str) -> tuple[str, str]:
    """A place as WhatsApp shows it: the body (name and address) and Twilio's
    ``PersistentAction`` (``geo:LAT,LON|label``) that turns it into a map pin."""
    latitude, longitude = float(location["latitude"]), float(location["longitude"])
    label = str(location.get("label") or "").strip()
    address = str(location.get("address") or "").strip()
    body = "\n".join(line for line in (label, address) if line) or text
    pin = " ".join((label or address).replace("|", " ").split())  # "|" separates Twilio's fields
    return body[:MAX_BODY_CHARS], f"geo:{latitude:.6f},{longitude:.6f}|{pin}"[:500]


def outside_window(last_inbound_at: datetime | None, now: datetime | None = None) -> bool:
    """True when free-form messages can no longer reach the customer."""
    if last_inbound_at is None:
        return True
    return (now or datetime.now(UTC)) - last_inbound_at > CUSTOMER_SERVICE_WINDOW


def window_error(last_inbound_at: datetime | None, *, from_twilio: bool = False) -> SendError:
    if from_twilio:
        when = "Twilio reports the conversation is closed (error 63016)"
    elif last_inbound_at is None:
        when = "the customer has not written to this number yet"
    else:
        hours = (datetime.now(UTC) - last_inbound_at).total_seconds() / 3600
        when = f"the customer's last message was {hours:.0f} hours ago"
    return SendError(
        f"outside WhatsApp's 24-hour window: {when}, so only an approved template can reach them; "
        "configure a template (Content SID) on the channel",
        transient=False,
        code=str(OUTSIDE_WINDOW_CODE),
    )


def template_variables(
    template: TemplateConfig, text: str, profile: dict[str, Any] | None, *, business: str = ""
) -> dict[str, str]:
    """The template's variables with ``{reply}``, ``{name}`` (the customer's WhatsApp profile
    name) and ``{business}`` (the business's name, from the agent's business info) filled in."""
    reply = text.strip()
    if len(reply) > MAX_BODY_CHARS:
        reply = reply[: MAX_BODY_CHARS - 1].rstrip() + "…"
    name = str((profile or {}).get("ProfileName") or "")
    filled = {}
    for key, value in template.variables.items():
        value = value.replace("{reply}", reply).replace("{name}", name).replace("{business}", business)
        filled[key] = value[:MAX_BODY_CHARS]
    return filled


TEMPLATES_TTL_SECONDS = 300.0  # how long the account's approved templates are trusted


async def approved_templates(runtime: Runtime, client: Client) -> list[Template]:
    """The account's approved templates, from the Content API (kept a few minutes)."""
    services = WhatsAppServices.of(runtime)
    account_sid = str(client.account_sid)
    cached = services.templates.get(account_sid)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    templates = await list_templates(client)
    services.templates[account_sid] = (time.monotonic() + TEMPLATES_TTL_SECONDS, templates)
    return templates


async def resolve_template(runtime: Runtime, client: Client, template: TemplateConfig) -> tuple[str, Template | None]:
    """The Content SID to send for the channel's template, and the approved template it is
    (None for a template configured by its Content SID alone)."""
    if template.content_sid is not None:
        return template.content_sid, None
    templates = await approved_templates(runtime, client)
    matches = [t for t in templates if t.name == template.name and template.language in (None, t.language)]
    if not matches:
        approved = ", ".join(f"{t.name} ({t.language})" for t in templates) or "none"
        wanted = f"{template.name!r}" + (f" in language {template.language!r}" if template.language else "")
        raise SendError(
            f"outside WhatsApp's 24-hour window, and the channel's template {wanted} is not an approved "
            f"template of the Twilio account (approved: {approved}); nothing was sent",
            transient=False,
            code="template_not_found",
        )
    return matches[0].content_sid, matches[0]


def check_template_variables(template: TemplateConfig, approved: Template | None, filled: dict[str, str]) -> None:
    """Refuse, naming them, the variables the approved template needs that the channel's config
    does not give, and any that came out empty (WhatsApp refuses an empty variable)."""
    wanted = f"template {template.name or template.content_sid!r}"
    if approved is not None:
        missing = sorted(set(approved.variables) - set(filled))
        if missing:
            raise SendError(
                f"{wanted} needs the variables {', '.join(missing)}, which the channel's template config "
                f"does not give (it gives: {', '.join(sorted(filled)) or 'none'}); nothing was sent",
                transient=False,
                code="template_variables",
            )
    empty = sorted(key for key, value in filled.items() if not value.strip())
    if empty:
        sources = ", ".join(f"{key} ({template.variables[key]!r})" for key in empty)
        raise SendError(
            f"{wanted}: variable {sources} came out empty for this conversation (no customer name?); "
            "nothing was sent",
            transient=False,
            code="template_variables",
        )


def _carries_reply(template: TemplateConfig) -> bool:
    return any("{reply}" in value for value in template.variables.values())


@dataclass(frozen=True)
class _Target:
    account: ChannelAccount
    conversation: ConversationInfo
    already_sent: list[str]
    part: int  # which part of the agent's reply this is (0 for the first, or a person's message)
    client: Client
    attempt: dict[str, Any] | None  # the last create begun (ATTEMPT_KEY), if any


async def _load(runtime: Runtime, message: OutboundMessage) -> _Target:
    try:
        account = await load_channel_account(runtime, message.channel_id)
        client = WhatsAppServices.of(runtime).client(runtime, account.integration, account.credentials)
    except NotAWhatsAppChannel:
        raise SendError(
            f"channel {message.channel_id} is disabled, deleted or has no Twilio integration; nothing was sent",
            transient=False,
            code="channel_unavailable",
        ) from None
    except CallableError as exc:  # the vault cannot decrypt the token, a malformed Account SID, ...
        raise SendError(f"the channel's Twilio credentials cannot be used: {exc}", transient=False, code="credentials") from None
    if account.workspace.id != message.workspace_id:
        raise SendError("the message and its channel belong to different workspaces", transient=False, code="workspace")
    # The pieces Twilio accepted on an earlier attempt (recorded as they go, see send()).
    progress = await delivery_progress(runtime, message.message_id)
    already_sent = list(progress.get(SENT_PARTS_KEY) or [])
    attempt = progress.get(ATTEMPT_KEY)
    return _Target(
        account, message.conversation, already_sent, message.part, client, attempt if isinstance(attempt, dict) else None
    )


def _attempt(piece: int, *, to: str, sender: dict[str, str | None], body: str | None, media: int, last: bool) -> dict[str, Any]:
    """The record of a create about to begin; ``body`` is ``None`` for a template (Twilio writes its text)."""
    return {
        "piece": piece,
        "at": datetime.now(UTC).isoformat(),
        "to": to,
        "from": sender["from_"],
        "service": sender["messaging_service_sid"],
        "body": body,
        "media": media,
        "last": last,
    }


async def _create(runtime: Runtime, message_id: int, attempt: dict[str, Any], client: Client, **kwargs: Any) -> SendResult:
    """Record ``attempt`` durably, take a slot from the pacer, then ask Twilio to create the message."""
    await record_delivery_progress(runtime, message_id, {ATTEMPT_KEY: attempt})
    settings = twilio_settings(runtime.settings)
    await WhatsAppServices.of(runtime).pacer.wait_for_slot(
        account_sid=str(client.account_sid),
        sender=None if kwargs.get("messaging_service_sid") else kwargs.get("from_"),
        sender_rate=settings.twilio_sender_sends_per_second,
        account_rate=settings.twilio_account_sends_per_second,
    )
    try:
        return await send_whatsapp(client, **kwargs)
    except SendError as error:
        if error.code not in _AMBIGUOUS_CODES:  # Twilio answered (or was never reached): nothing was sent
            await record_delivery_progress(runtime, message_id, {ATTEMPT_KEY: None})
        raise


def _is_the_attempt(found: SentMessage, attempt: dict[str, Any], began: datetime) -> bool:
    """Whether a message Twilio lists is the one ``attempt`` created."""
    if found.date_created < began - CLOCK_SLACK:
        return False
    if attempt.get("service"):
        if found.messaging_service_sid != attempt["service"]:
            return False
    elif found.from_ != attempt.get("from"):
        return False
    if attempt.get("body") is None:  # a template: Twilio wrote the body
        return True
    return found.body.strip() == str(attempt["body"]).strip() and found.num_media == int(attempt.get("media") or 0)


async def _settle_earlier_attempt(runtime: Runtime, message: OutboundMessage, target: _Target) -> tuple[list[str], SendResult | None]:
    """Before sending: did an earlier attempt's create reach Twilio, unrecorded?

    Returns the SIDs of the pieces sent so far, and the result when the earlier attempt
    finished the message (its last piece, or a template). Without an unsettled attempt it
    returns what was recorded, asking Twilio nothing.
    """
    sent = list(target.already_sent)
    attempt = target.attempt
    if attempt is None or int(attempt.get("piece", -1)) < len(sent):
        return sent, None
    try:
        began = datetime.fromisoformat(str(attempt["at"]))
    except (KeyError, ValueError):
        log.warning("message %s: unreadable send attempt record %r; sending again", message.message_id, attempt)
        return sent, None
    settle = twilio_settings(runtime.settings).twilio_send_settle_seconds
    waited = (datetime.now(UTC) - began).total_seconds()
    if waited < settle:  # a create still under way at Twilio would not be listed yet
        await asyncio.sleep(settle - waited)
    listed = await list_sent_messages(
        target.client, to=str(attempt.get("to") or message.to),
        from_=None if attempt.get("service") else attempt.get("from"), since=began - CLOCK_SLACK,
    )
    matches = [m for m in listed if m.sid not in sent and _is_the_attempt(m, attempt, began)]
    if not matches:
        log.info("message %s: Twilio has no trace of the attempt begun at %s; sending it again", message.message_id, began)
        return sent, None
    earliest = matches[-1]  # listed newest first
    log.info("message %s: the attempt begun at %s reached Twilio as %s; not sending it again", message.message_id, began, earliest.sid)
    if attempt.get("last"):
        return sent, SendResult(provider_message_id=earliest.sid, status=earliest.status)
    sent.append(earliest.sid)
    await record_delivery_progress(runtime, message.message_id, {SENT_PARTS_KEY: sent, ATTEMPT_KEY: None})
    return sent, None


async def _send_chosen_template(
    runtime: Runtime, message: OutboundMessage, client: Client, sender: dict[str, str | None], status_url: str
) -> SendResult:
    """Send the approved template a person chose (``message.template``) with their variables,
    refusing, naming them, the variables the approved template needs that are missing."""
    chosen = message.template or {}
    content_sid = str(chosen.get("id") or "")
    variables = {str(key): str(value) for key, value in (chosen.get("variables") or {}).items()}
    approved = next((t for t in await approved_templates(runtime, client) if t.content_sid == content_sid), None)
    if approved is None:
        raise SendError(
            f"template {content_sid!r} is not an approved template of the Twilio account (any more); nothing was sent",
            transient=False,
            code="template_not_found",
        )
    missing = sorted(key for key in approved.variables if not variables.get(key, "").strip())
    if missing:
        raise SendError(
            f"template {approved.name!r} needs a value for the variables {', '.join(missing)}; nothing was sent",
            transient=False,
            code="template_variables",
        )
    attempt = _attempt(0, to=message.to, sender=sender, body=None, media=0, last=True)
    return await _create(
        runtime, message.message_id, attempt, client, to=message.to, **sender,
        content_sid=content_sid, content_variables=variables, status_callback=status_url,
    )


async def send(runtime: Runtime, message: OutboundMessage) -> SendResult:
    """Send one reply part over WhatsApp. Raises :class:`SendError` (transient or final).

    Refuses without calling Twilio when the contact opted out (21610). Outside the 24-hour
    window sends the channel's template instead, or fails with code 63016.
    """
    target = await _load(runtime, message)
    account, conversation = target.account, target.conversation
    if conversation.opted_out:
        raise SendError(
            "the contact has opted out of WhatsApp messages from this sender (Twilio 21610); "
            "nothing is sent until they opt back in (by sending START)",
            transient=False,
            code=str(OPTED_OUT_CODE),
            opted_out=True,
        )
    client = target.client
    sender: dict[str, str | None] = {"from_": account.config.sender, "messaging_service_sid": account.config.messaging_service_sid}
    status_url = account.urls["status"]
    sent, finished = await _settle_earlier_attempt(runtime, message, target)
    if finished is not None:
        return finished

    async def send_template() -> SendResult:
        template = account.config.template
        if template is None:
            raise window_error(conversation.last_inbound_at)
        content_sid, approved = await resolve_template(runtime, client, template)
        business = ""
        if any("{business}" in value for value in template.variables.values()):
            agent = await read_channel_agent(runtime, account.channel)
            business = str((agent.business_info if agent else {}).get("name") or "")
        variables = template_variables(template, message.text, conversation.profile, business=business)
        check_template_variables(template, approved, variables)
        attempt = _attempt(len(sent), to=message.to, sender=sender, body=None, media=0, last=True)
        return await _create(
            runtime,
            message.message_id,
            attempt,
            client,
            to=message.to,
            **sender,
            content_sid=content_sid,
            content_variables=variables,
            status_callback=status_url,
        )

    if message.template is not None and not sent:  # a person chose one of the account's approved templates
        return await _send_chosen_template(runtime, message, client, sender, status_url)

    if outside_window(conversation.last_inbound_at) and not sent:
        template = account.config.template
        if template is not None and target.part > 0 and not _carries_reply(template):
            # The same template for every part would say the same thing several times.
            raise SendError(
                "outside WhatsApp's 24-hour window: the channel's template went out with the first part "
                "of this reply, so this part is not sent",
                transient=False,
                code=str(OUTSIDE_WINDOW_CODE),
            )
        return await send_template()

    if message.choices is not None and not sent:
        content_sid = await _choices_content(runtime, client, message.message_id, message.choices)
        if content_sid is not None:
            attempt = _attempt(0, to=message.to, sender=sender, body=None, media=0, last=True)
            return await _create(
                runtime, message.message_id, attempt, client, to=message.to, **sender, content_sid=content_sid,
                status_callback=status_url,
            )
        # else: the choices go numbered, as the message's text says them

    if message.location is not None and not sent:
        body, action = location_message(message.location, message.text)
        attempt = _attempt(0, to=message.to, sender=sender, body=body, media=0, last=True)
        return await _create(
            runtime, message.message_id, attempt, client, to=message.to, **sender, body=body,
            persistent_action=[action], status_callback=status_url,
        )

    pieces = pieces_of(message.text, list(message.media))
    if not pieces:
        raise SendError("the reply has no text and no media; nothing to send", transient=False, code="empty")
    result = SendResult(provider_message_id=sent[-1] if sent else None, status="queued")
    for index, piece in enumerate(pieces):
        if index < len(sent):
            continue  # accepted by Twilio on an earlier attempt
        last = index == len(pieces) - 1
        attempt = _attempt(index, to=message.to, sender=sender, body=piece.body or "", media=1 if piece.media_url else 0, last=last)
        try:
            result = await _create(
                runtime,
                message.message_id,
                attempt,
                client,
                to=message.to,
                **sender,
                body=piece.body,
                media_urls=[piece.media_url] if piece.media_url else None,
                # Only the last piece reports its delivery: it stands for the whole message.
                status_callback=status_url if last else None,
            )
        except SendError as error:
            if error.code != str(OUTSIDE_WINDOW_CODE) or sent:
                raise
            if account.config.template is None:
                raise window_error(conversation.last_inbound_at, from_twilio=True) from None
            return await send_template()
        if not last:
            sent.append(str(result.provider_message_id))
            await record_delivery_progress(runtime, message.message_id, {SENT_PARTS_KEY: sent})
    return result


async def on_turn_started(runtime: Runtime, turn: TurnStarted) -> None:
    """Show WhatsApp's typing indicator on the newest message being answered (best effort).

    It also marks the message read (blue ticks) and disappears when the reply arrives or
    after 25 seconds.
    """
    if not turn.provider_message_ids:
        return
    try:
        account = await load_channel_account(runtime, turn.channel_id)
    except NotAWhatsAppChannel:
        return
    client = WhatsAppServices.of(runtime).client(runtime, account.integration, account.credentials)
    await send_typing_indicator(client, turn.provider_message_ids[-1])
