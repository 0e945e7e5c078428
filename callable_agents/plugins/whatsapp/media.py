"""What a customer's WhatsApp media means to the agent: images, voice notes, other files.

The webhook only stores media references (``Message.media``: ``[{"url", "content_type"}]``);
nothing is downloaded on the request path. When the pipeline builds the model input for a
turn it calls :func:`describe_inbound_media` for each customer message with media:

* an **image** is downloaded with the account's credentials (size cap: the channel's
  ``max_media_bytes``) and returned as a ``data:`` URL for image input, when the model
  accepts images; otherwise the agent is told an image arrived;
* a **voice note** (``audio/*``) is transcribed with the workspace's OpenAI integration
  (``audio.transcriptions.create``), when the channel allows it and there is one; the
  transcript is stored on the media item (``"note"``) so it is made once. Otherwise the
  agent is told it cannot listen to voice notes yet, and says so;
* anything else (documents, video, contacts) is named by type.

Credentials are only ever sent to Twilio's API host (or the configured override): a media
URL pointing elsewhere is not downloaded.

The inbox shows the same media through :func:`fetch_channel_media` (the channel type's
``fetch_media``): the same download, host check and size cap, for a person's browser,
which has no Twilio credentials.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import openai

from callable_agents.plugin import (
    ChannelMediaError,
    InboundMedia,
    Runtime,
    StoredIntegration,
    read_integration_secret,
    read_model_integration_name,
    read_provider_integrations,
    record_media_note,
)
from callable_agents.plugins.whatsapp.settings import twilio_settings
from callable_agents.plugins.whatsapp.twilio_api import MediaFetchError, fetch_media
from callable_agents.plugins.whatsapp.accounts import (
    ChannelAccount,
    NotAWhatsAppChannel,
    WhatsAppServices,
    load_channel_account,
)

log = logging.getLogger(__name__)

TWILIO_MEDIA_HOST = "api.twilio.com"
TRANSCRIPTION_TIMEOUT_SECONDS = 60.0

IMAGE_NOT_SUPPORTED = "[The customer sent an image, but you can't see images; ask them to describe it in words.]"
IMAGE_UNAVAILABLE = "[The customer sent an image, but it could not be downloaded; ask them to send it again or describe it.]"
VOICE_NOT_SUPPORTED = "[The customer sent a voice note; you can't listen to voice notes yet — say so, and ask them to write instead.]"
TRANSCRIPT_PREFIX = "[Voice note, transcribed:]"


@dataclass(frozen=True)
class MediaDescription:
    """One media item as model input: an image (``data_url``) or a note for the agent (``text``)."""

    kind: Literal["image", "transcript", "note"]
    content_type: str
    text: str | None = None
    data_url: str | None = None

    def content_block(self) -> dict[str, Any]:
        """A LangChain/OpenAI message content block for this item."""
        if self.kind == "image" and self.data_url:
            return {"type": "image_url", "image_url": {"url": self.data_url}}
        return {"type": "text", "text": self.text or ""}


def media_content_blocks(descriptions: list[MediaDescription]) -> list[dict[str, Any]]:
    """Content blocks for a ``HumanMessage(content=[{"type": "text", ...}, *blocks])``."""
    return [description.content_block() for description in descriptions]


def _major_type(content_type: str) -> str:
    return content_type.split("/", 1)[0].strip().lower()


def _media_host_allowed(runtime: Runtime, url: str) -> bool:
    """Only Twilio's API (or its configured stand-in) may receive the account's credentials."""
    parts = urlsplit(url)
    allowed = {(TWILIO_MEDIA_HOST, "https")}
    override = twilio_settings(runtime.settings).twilio_api_base_url
    if override:
        configured = urlsplit(override)
        allowed.add((configured.netloc, configured.scheme))
    return (parts.netloc, parts.scheme) in allowed


async def _download(runtime: Runtime, account: ChannelAccount, url: str) -> tuple[bytes, str]:
    if not _media_host_allowed(runtime, url):
        raise MediaFetchError("media url is not on Twilio's API host; not downloading it with the account's credentials")
    user, password = account.credentials.rest_auth
    return await fetch_media(
        url, user, password, max_bytes=account.config.max_media_bytes, http=WhatsAppServices.of(runtime).media_http()
    )


async def fetch_channel_media(runtime: Runtime, channel_id: str, url: str) -> tuple[bytes, str]:
    """The channel type's ``fetch_media``: one stored media item as ``(content, content_type)``.

    Raises ``ChannelMediaError`` (the reason in words, no secrets) when the channel is gone,
    disabled or has no Twilio account, the URL is not on Twilio's API host, or the download
    is refused, missing or over the channel's ``max_media_bytes``.
    """
    try:
        account = await load_channel_account(runtime, channel_id)
    except NotAWhatsAppChannel:
        raise ChannelMediaError("the WhatsApp channel is disabled, gone or has no Twilio account") from None
    try:
        return await _download(runtime, account, url)
    except MediaFetchError as exc:
        raise ChannelMediaError(str(exc)) from None


async def _openai_integration(runtime: Runtime, account: ChannelAccount) -> StoredIntegration | None:
    """The agent's model integration if it is OpenAI, else the workspace's first OpenAI integration."""
    workspace_id = account.channel.workspace_id
    preferred = await read_model_integration_name(runtime, workspace_id, account.channel.agent_id)
    candidates = await read_provider_integrations(runtime, workspace_id, "openai")
    for integration in candidates:
        if preferred and preferred in (integration.name, integration.id):
            return integration
    return candidates[0] if candidates else None


async def transcribe(runtime: Runtime, account: ChannelAccount, audio: bytes, content_type: str) -> str | None:
    """The voice note's text, or None when the workspace has no OpenAI integration or it fails."""
    integration = await _openai_integration(runtime, account)
    if integration is None or "api_key" not in integration.secret_fields:
        return None
    public = integration.public
    api_key = read_integration_secret(runtime, integration, "api_key")
    client = openai.AsyncOpenAI(
        api_key=api_key,
        base_url=public.get("base_url"),
        organization=public.get("organization"),
        timeout=TRANSCRIPTION_TIMEOUT_SECONDS,
        max_retries=1,
    )
    extension = content_type.split("/", 1)[-1].split(";", 1)[0].strip() or "ogg"
    try:
        result = await client.audio.transcriptions.create(
            model=account.config.transcription_model, file=(f"voice-note.{extension}", audio, content_type)
        )
    except openai.OpenAIError as exc:
        log.warning("voice note transcription failed for channel %s: %s", account.channel.id, type(exc).__name__)
        return None
    finally:
        await client.close()
    text = (getattr(result, "text", None) or "").strip()
    return text or None


async def describe_inbound_media(
    runtime: Runtime, message: InboundMedia, *, accepts_images: bool = True
) -> list[MediaDescription]:
    """Describe a customer message's media for the model, one entry per item, in order.

    ``accepts_images``: whether the turn's chat model takes image input (offline mode and
    text-only models: False). Never raises for a media problem: a download or transcription
    failure becomes a note telling the agent what happened.
    """
    items = list(message.media or [])
    if not any(isinstance(item, dict) for item in items):
        return []
    try:
        account: ChannelAccount | None = await load_channel_account(runtime, message.channel_id)
    except NotAWhatsAppChannel:
        account = None
    described: list[MediaDescription] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        content_type = str(item.get("content_type") or "application/octet-stream")
        major = _major_type(content_type)
        if item.get("note"):
            described.append(MediaDescription("transcript" if major == "audio" else "note", content_type, text=str(item["note"])))
            continue
        url = str(item.get("url") or "")
        if major == "image":
            if not accepts_images:
                described.append(MediaDescription("note", content_type, text=IMAGE_NOT_SUPPORTED))
                continue
            try:
                if account is None:
                    raise MediaFetchError("the channel is gone")
                content, served_type = await _download(runtime, account, url)
            except MediaFetchError as exc:
                log.warning("image of message %s not downloaded: %s", message.id, exc)
                described.append(MediaDescription("note", content_type, text=IMAGE_UNAVAILABLE))
                continue
            image_type = served_type if _major_type(served_type) == "image" else content_type
            # Up to several megabytes: encode off the event loop.
            encoded = await asyncio.to_thread(lambda: base64.b64encode(content).decode("ascii"))
            described.append(MediaDescription("image", image_type, data_url=f"data:{image_type};base64,{encoded}"))
        elif major == "audio":
            transcript = None
            if account is not None and account.config.transcribe_voice_notes:
                try:
                    audio, served_type = await _download(runtime, account, url)
                    transcript = await transcribe(runtime, account, audio, served_type or content_type)
                except MediaFetchError as exc:
                    log.warning("voice note of message %s not downloaded: %s", message.id, exc)
            if transcript is None:
                described.append(MediaDescription("note", content_type, text=VOICE_NOT_SUPPORTED))
                continue
            note = f"{TRANSCRIPT_PREFIX} {transcript}"
            # Kept on the media item, so a rerun of the turn does not transcribe again.
            await record_media_note(runtime, message.id, index, note)
            described.append(MediaDescription("transcript", content_type, text=note))
        else:
            described.append(
                MediaDescription("note", content_type, text=f"[The customer sent a file ({content_type}).]")
            )
    return described


async def inbound_media_blocks(runtime: Runtime, message: InboundMedia, *, accepts_images: bool) -> list[dict[str, Any]]:
    """The message's media as content blocks to append to its ``HumanMessage`` content.

    For the pipeline: ``HumanMessage(content=[{"type": "text", "text": message.text},
    *await inbound_media_blocks(runtime, message, accepts_images=...)])``.
    """
    return media_content_blocks(await describe_inbound_media(runtime, message, accepts_images=accepts_images))
