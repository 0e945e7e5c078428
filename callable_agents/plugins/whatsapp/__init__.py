"""The WhatsApp channel (through the business's own Twilio account), as a plugin.

A customer writes on WhatsApp; Twilio calls the channel's inbound webhook
(:mod:`~callable_agents.plugins.whatsapp.webhook`), which checks the signature,
stores the message with its turn job and answers at once; the worker runs the agent and
each reply part goes back through :func:`~callable_agents.plugins.whatsapp.send.send`
over Twilio's REST API. Twilio's status callbacks move each reply's delivery status
forward (:mod:`~callable_agents.plugins.whatsapp.status`). A customer's opt-out and opt-in
keywords (Twilio's, with or without ``OptOutType``) are read by
:mod:`~callable_agents.plugins.whatsapp.opt_out`.

A WhatsApp channel is a Twilio integration (the channel's ``integration``), a sender
(``whatsapp:+E164``) or a Messaging Service, and a chat agent; its config is
:class:`~callable_agents.plugins.whatsapp.config.WhatsAppConfig`. The helpers the
CLI, API and dashboard need are here: :func:`channel_urls` (what to paste into Twilio) and
:func:`verify_twilio_integration` (prove a Twilio integration's credentials work; it is the
``twilio`` provider's ``verify``, see :mod:`~callable_agents.plugins.whatsapp.integration`).
The channel type's ``setup`` (:mod:`~callable_agents.plugins.whatsapp.setup`) lists the
account's senders, points a number or Messaging Service at the channel ("Configure Twilio
for me") and sends a test message.
The plugin's own settings are in :mod:`~callable_agents.plugins.whatsapp.settings`.
"""

from __future__ import annotations

from typing import Any

from callable_agents.plugin import ChannelCapabilities, ChannelType, ProviderType, Runtime, hookimpl
from callable_agents.plugins.whatsapp.config import KIND, WhatsAppConfig, channel_urls
from callable_agents.plugins.whatsapp.inbox import WINDOW_HOURS, channel_templates, describe_error, reply_templates
from callable_agents.plugins.whatsapp.integration import TWILIO, verify_twilio_integration
from callable_agents.plugins.whatsapp.media import (
    describe_inbound_media,
    fetch_channel_media,
    inbound_media_blocks,
    media_content_blocks,
)
from callable_agents.plugins.whatsapp.send import on_turn_started, send
from callable_agents.plugins.whatsapp.status import RANKS
from callable_agents.plugins.whatsapp.setup import SETUP
from callable_agents.plugins.whatsapp.webhook import routes

CAPABILITIES = ChannelCapabilities(
    max_message_length=1600, formatting="starred", media=True, citations=True, images_in=True,
    length_unit="utf16", locations=True, choices=True,  # Twilio may count the 1,600 in UTF-16 units: fit both counts
    reply_window_hours=WINDOW_HOURS,
    prompt_guidance=(
        "You are replying on WhatsApp. Keep answers short and conversational. Use *bold* and _italic_ "
        "sparingly; no Markdown headings or tables."
    ),
)

async def _media_input(runtime: Runtime, message: Any, accepts_images: bool) -> list[dict[str, Any]]:
    return await inbound_media_blocks(runtime, message, accepts_images=accepts_images)


def _public_addresses(settings: Any, channel: Any) -> dict[str, str]:
    urls = channel_urls(settings, channel)
    return {"twilio_inbound_url": urls["inbound"], "twilio_status_callback_url": urls["status"]}


WHATSAPP = ChannelType(
    name=KIND,
    description="WhatsApp through the business's own Twilio account",
    config_schema=WhatsAppConfig,
    capabilities=CAPABILITIES,
    send=send,
    routes=routes,
    on_turn_started=on_turn_started,
    media_input=_media_input,
    public_addresses=_public_addresses,
    delivery_ranks=RANKS,
    reply_templates=reply_templates,
    channel_templates=channel_templates,
    describe_delivery_error=describe_error,
    integration_provider=TWILIO.name,
    title="WhatsApp",
    setup=SETUP,
    fetch_media=fetch_channel_media,
)


@hookimpl
def register_channels() -> list[ChannelType]:
    return [WHATSAPP]


@hookimpl
def register_integration_providers() -> list[ProviderType]:
    return [TWILIO]


__all__ = [
    "CAPABILITIES",
    "WHATSAPP",
    "WhatsAppConfig",
    "channel_urls",
    "describe_inbound_media",
    "inbound_media_blocks",
    "media_content_blocks",
    "register_channels",
    "register_integration_providers",
    "verify_twilio_integration",
]
