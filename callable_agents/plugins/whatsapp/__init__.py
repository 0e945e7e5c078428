"""The WhatsApp channel (through the business's own Twilio account), as a plugin.

A customer writes on WhatsApp; Twilio calls the channel's inbound webhook
(:mod:`~callable_agents.plugins.whatsapp.webhook`), which checks the signature,
stores the message with its turn job and answers at once; the worker runs the agent and
each reply part goes back through :func:`~callable_agents.plugins.whatsapp.send.send`
over Twilio's REST API. Twilio's status callbacks move each reply's delivery status
forward (:mod:`~callable_agents.plugins.whatsapp.status`).

A WhatsApp channel is a Twilio integration (the channel's ``integration``), a sender
(``whatsapp:+E164``) or a Messaging Service, and a chat agent; its config is
:class:`~callable_agents.plugins.whatsapp.config.WhatsAppConfig`. The helpers the
CLI, API and dashboard need are here: :func:`channel_urls` (what to paste into Twilio) and
:func:`verify_twilio_integration` (prove a Twilio integration's credentials work).
"""

from __future__ import annotations

from typing import Any

from callable_agents.core.contracts.channels import ChannelCapabilities, ChannelType
from callable_agents.core.errors import InvalidInput
from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.store.integrations import read_secret
from callable_agents.core.models import Integration, Message, Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.plugins.whatsapp.twilio_api import make_client, verify_credentials
from callable_agents.plugins.whatsapp.accounts import WhatsAppServices
from callable_agents.plugins.whatsapp.config import KIND, WhatsAppConfig, channel_urls
from callable_agents.plugins.whatsapp.media import (
    describe_inbound_media,
    inbound_media_blocks,
    media_content_blocks,
)
from callable_agents.plugins.whatsapp.send import on_turn_started, send
from callable_agents.plugins.whatsapp.webhook import routes

CAPABILITIES = ChannelCapabilities(
    max_message_length=1600, formatting="whatsapp", media=True, citations=True, images_in=True,
    prompt_guidance=(
        "You are replying on WhatsApp. Keep answers short and conversational. Use *bold* and _italic_ "
        "sparingly; no Markdown headings or tables."
    ),
)

async def _media_input(runtime: Runtime, message: Message, accepts_images: bool) -> list[dict[str, Any]]:
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
)


@hookimpl
def register_channels() -> list[ChannelType]:
    return [WHATSAPP]


@hookimpl
async def verify_integration(runtime: Runtime, workspace: Workspace, integration: Integration) -> dict[str, Any] | None:
    if integration.provider != "twilio":
        return None
    return await verify_twilio_integration(runtime, workspace, integration)


async def verify_twilio_integration(runtime: Runtime, workspace: Workspace, integration: Integration) -> dict[str, Any]:
    """Prove a Twilio integration's credentials work by fetching its account from Twilio.

    The Auth Token is always checked (webhook signatures need it); an API key, when the
    integration has one, is checked too, since replies are sent with it. Returns the
    account's public facts (``sid``, ``friendly_name``, ``status``, ``type``). Raises
    :class:`~callable_agents.core.errors.InvalidInput` with a clear reason when Twilio answers
    401 (wrong token) or 404 (unknown account), or the account is not active, and
    :class:`~callable_agents.plugins.whatsapp.twilio_api.TwilioUnavailable` when Twilio
    cannot be reached.
    """
    if integration.provider != "twilio":
        raise InvalidInput(f"integration {integration.name!r} is a {integration.provider} integration, not twilio")
    public = integration.public or {}
    account_sid = str(public.get("account_sid") or "")
    http = WhatsAppServices.of(runtime).twilio_http()
    settings = runtime.settings

    auth_token = await read_secret(None, runtime.vault, workspace, integration, "auth_token")

    def client_for(**api_key: str) -> Any:
        return make_client(
            account_sid,
            auth_token,
            api_base_url=settings.twilio_api_base_url,
            messaging_base_url=settings.twilio_messaging_base_url,
            http_client=http,
            **api_key,
        )

    facts = await verify_credentials(client_for(), account_sid)
    api_key_sid = public.get("api_key_sid")
    if api_key_sid and "api_key_secret" in (integration.secrets or {}):
        api_key_secret = await read_secret(None, runtime.vault, workspace, integration, "api_key_secret")
        try:
            await verify_credentials(client_for(api_key_sid=api_key_sid, api_key_secret=api_key_secret), account_sid)
        except InvalidInput as exc:
            raise InvalidInput(f"the API key {api_key_sid} does not work for this account: {exc}") from None
    return facts


__all__ = [
    "CAPABILITIES",
    "WHATSAPP",
    "WhatsAppConfig",
    "channel_urls",
    "describe_inbound_media",
    "inbound_media_blocks",
    "media_content_blocks",
    "register_channels",
    "verify_twilio_integration",
]
