"""Delivering a reply over WhatsApp through the tenant's Twilio account.

One stored reply part becomes one WhatsApp message: its text (at most 1600 characters, the
agent graph already split and formatted it) with its first media item as the attachment.
A longer text (a person's reply from the inbox) is split here, and further media go as
messages of their own, because a WhatsApp message carries one attachment; the Twilio SIDs
of the pieces already sent are recorded on the message, so a retry after a failure on a
later piece never sends an earlier one again.

WhatsApp's **24-hour customer service window**: free-form messages may only be sent within
24 hours of the customer's last message. Outside it (a person answering late, a retry that
waited too long) the channel's approved template is sent instead, or the send fails with a
clear error; Twilio's own 63016 ("outside the window") is handled the same way.
"""

from __future__ import annotations

import logging
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
    delivery_progress,
    record_delivery_progress,
    split_message,
)
from callable_agents.plugins.whatsapp.twilio_api import (
    OPTED_OUT_CODE,
    OUTSIDE_WINDOW_CODE,
    send_typing_indicator,
    send_whatsapp,
)
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


@dataclass(frozen=True)
class Piece:
    """One Twilio message of a reply: a text, an attachment, or both (a caption)."""

    body: str | None
    media_url: str | None


def pieces_of(text: str, media: list[dict[str, Any]]) -> list[Piece]:
    """How a reply part goes out: text parts of at most 1600 characters, the first carrying
    the first attachment, then the other attachments one per message."""
    texts = split_message(text, MAX_BODY_CHARS) if text and text.strip() else []
    urls = [str(item["url"]) for item in media if isinstance(item, dict) and item.get("url")]
    pieces: list[Piece] = []
    if texts or urls:
        pieces.append(Piece(texts[0] if texts else None, urls[0] if urls else None))
    pieces += [Piece(body, None) for body in texts[1:]]
    pieces += [Piece(None, url) for url in urls[1:]]
    return pieces


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


def template_variables(template: TemplateConfig, text: str, profile: dict[str, Any] | None) -> dict[str, str]:
    """The template's variables with ``{reply}`` and ``{name}`` filled in (no other formatting)."""
    reply = text.strip()
    if len(reply) > MAX_BODY_CHARS:
        reply = reply[: MAX_BODY_CHARS - 1].rstrip() + "…"
    name = str((profile or {}).get("ProfileName") or "")
    filled = {}
    for key, value in template.variables.items():
        value = value.replace("{reply}", reply).replace("{name}", name)
        filled[key] = value[:MAX_BODY_CHARS]
    return filled


def _carries_reply(template: TemplateConfig) -> bool:
    return any("{reply}" in value for value in template.variables.values())


@dataclass(frozen=True)
class _Target:
    account: ChannelAccount
    conversation: ConversationInfo
    already_sent: list[str]
    part: int  # which part of the agent's reply this is (0 for the first, or a person's message)
    client: Client


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
    return _Target(account, message.conversation, already_sent, message.part, client)


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
    sender = {"from_": account.config.sender, "messaging_service_sid": account.config.messaging_service_sid}
    status_url = account.urls["status"]

    async def send_template() -> SendResult:
        template = account.config.template
        if template is None:
            raise window_error(conversation.last_inbound_at)
        return await send_whatsapp(
            client,
            to=message.to,
            **sender,
            content_sid=template.content_sid,
            content_variables=template_variables(template, message.text, conversation.profile),
            status_callback=status_url,
        )

    if outside_window(conversation.last_inbound_at) and not target.already_sent:
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

    pieces = pieces_of(message.text, list(message.media))
    if not pieces:
        raise SendError("the reply has no text and no media; nothing to send", transient=False, code="empty")
    sent = list(target.already_sent)
    result = SendResult(provider_message_id=sent[-1] if sent else None, status="queued")
    for index, piece in enumerate(pieces):
        if index < len(sent):
            continue  # accepted by Twilio on an earlier attempt
        last = index == len(pieces) - 1
        try:
            result = await send_whatsapp(
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
