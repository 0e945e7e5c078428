"""A stored message's media for the people reading the inbox (the dashboard and the admin API).

A message keeps its media as references (``Message.media``: ``[{"url", "content_type", ...}]``),
often a provider URL that only answers with the account's credentials (HTTP Basic
authentication for media). :func:`read_media_item` finds one item of a
message of a conversation of the workspace (anything else is not found);
:func:`fetch_media_item` downloads it through the channel type's ``fetch_media`` (which keeps
the credentials to the provider's own host), or answers None when the channel type has none
and the stored URL is to be linked as it is. :func:`media_headers` are the headers to serve it
with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from callable_agents.core.errors import NotFound
from callable_agents.core.models import Channel, Message
from callable_agents.core.request_input import BIGINT_MAX

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime

DEFAULT_CONTENT_TYPE = "application/octet-stream"
CACHE_SECONDS = 3600
INLINE_TYPES = ("image/", "audio/")


@dataclass(frozen=True)
class MediaItem:
    """One media item of a stored message, with the channel it came through."""

    channel_id: str
    channel_kind: str
    url: str
    content_type: str


@dataclass(frozen=True)
class FetchedMedia:
    content: bytes
    content_type: str


async def read_media_item(
    runtime: Runtime, workspace_id: str, conversation_id: str, message_id: int, index: int
) -> MediaItem:
    """Item ``index`` of message ``message_id`` of the workspace's conversation; raises
    ``NotFound`` for another workspace's or conversation's message, or a missing item."""
    if not 0 < message_id <= BIGINT_MAX:
        raise NotFound(f"message {message_id} not found")
    async with runtime.db.sessions() as session:
        found = (
            await session.execute(
                select(Message.media, Channel.id, Channel.kind)
                .join(Channel, Channel.id == Message.channel_id)
                .where(
                    Message.id == message_id,
                    Message.conversation_id == conversation_id,
                    Message.workspace_id == workspace_id,
                )
            )
        ).first()
    if found is None:
        raise NotFound(f"message {message_id} not found in conversation {conversation_id!r}")
    media, channel_id, channel_kind = found
    items = list(media or [])
    if not 0 <= index < len(items) or not isinstance(items[index], dict):
        raise NotFound(f"message {message_id} has no media item {index}")
    item = items[index]
    url = str(item.get("url") or "")
    if not url:
        raise NotFound(f"media item {index} of message {message_id} has no URL")
    content_type = str(item.get("content_type") or "") or DEFAULT_CONTENT_TYPE
    return MediaItem(channel_id, channel_kind, url, content_type)


async def fetch_media_item(runtime: Runtime, item: MediaItem) -> FetchedMedia | None:
    """The item's bytes through its channel type's ``fetch_media``; None when the type has
    none (link the stored URL). Raises ``ChannelMediaError`` when the download failed."""
    channel_type = runtime.plugins.channels.types.get(item.channel_kind)
    if channel_type is None or channel_type.fetch_media is None:
        return None
    content, served_type = await channel_type.fetch_media(runtime, item.channel_id, item.url)
    return FetchedMedia(content, (served_type or "").strip() or item.content_type)


def linkable(url: str) -> bool:
    """Whether a stored URL may be handed to a browser as it is (http or https only)."""
    return url.lower().startswith(("https://", "http://"))


def media_headers(content_type: str) -> dict[str, str]:
    """Headers for serving downloaded media: private caching, no sniffing, shown inline only
    for images and audio (anything else downloads), and no scripts if opened directly."""
    inline = content_type.lower().startswith(INLINE_TYPES)
    return {
        "Cache-Control": f"private, max-age={CACHE_SECONDS}",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": "inline" if inline else "attachment",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
